"""Protocol-faithful Asterisk 22 stand-in (ARI + AMI) for tests.

The reference material (ARI api-docs, recorded transcripts, AMI docs) lives in
``shared/asterisk`` beside the clone; see :func:`standin.apidocs.shared_dir`.
"""
