"""The engine's one configuration file (``ivr serve --config ivr-engine.yaml``) and its environment overrides.

Everything has an embedded default, so ``ivr serve`` with no file runs the sample
clinic on SQLite, on 127.0.0.1, without Asterisk. Secrets never go in the file:
the ARI and AMI passwords come from ``IVR_ARI_PASSWORD`` / ``IVR_AMI_PASSWORD``,
and the database URL (which may carry a password) from ``DATABASE_URL``.
Relative paths in the file are relative to the file's folder; with no file, to
the current directory.

Environment variables (each overrides the file):

=====================  ===============================================
``IVR_ARI_URL``        ARI base URL; setting it turns Asterisk on
``IVR_ARI_USER``       ``ari.conf`` user (default ``ivr-engine``)
``IVR_ARI_PASSWORD``   its password (required when Asterisk is on)
``IVR_ARI_APP``        the Stasis application name
``IVR_AMI_HOST``       AMI host; ``IVR_AMI_PORT``, ``IVR_AMI_USER``
``IVR_AMI_PASSWORD``   AMI secret (AMI is used only when this is set)
``IVR_TWILIO_ACCOUNT_SID``  turns Twilio on; ``IVR_TWILIO_AUTH_TOKEN`` its auth token
``IVR_PUBLIC_URL``     the URL Twilio calls this engine at (webhook signatures)
``IVR_API_TOKEN``      bearer token of the operations API (agent state); unset: API off
``DATABASE_URL``       the routing store (default: SQLite ``./ivr-state.db``)
``IVR_HOST``           web server address; ``IVR_PORT`` its port
=====================  ===============================================
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from pydantic import BaseModel, ConfigDict, Field

from ivr.configfile import load_config
from ivr.errors import IvrError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class ConfigMissingSecret(IvrError):
    error_id = "E-CONFIG-SECRET"


class Listen(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)  # 0: any free port (printed at start)


class Trees(BaseModel):
    """Which tree answers which dialled number (the DID Asterisk passes as the Stasis argument)."""

    model_config = ConfigDict(extra="forbid")

    default: str = "calltrees/clinic-main.yaml"
    numbers: dict[str, str] = Field(default_factory=dict)


class Fallback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    context: str = "ivr-fallback"
    extension: str = "s"
    priority: int = 1


class Asterisk(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ari_url: str = "http://127.0.0.1:8088/ari"
    ari_user: str = "ivr-engine"
    app: str = "ivr-engine"
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_user: str = "ivr-engine"
    fallback: Fallback = Field(default_factory=Fallback)
    transfer_context: str = "ivr-transfer"
    announce_every: float = Field(45.0, gt=0)  # seconds between position announcements to waiting callers
    request_timeout: float = Field(5.0, gt=0)


class Twilio(BaseModel):
    """A Twilio number pointed at this engine (voice URL ``{public_url}/twilio/voice``)."""

    model_config = ConfigDict(extra="forbid")

    account_sid: str = ""  # or IVR_TWILIO_ACCOUNT_SID
    public_url: str | None = None  # the URL Twilio calls (signatures are over it), e.g. https://ivr.clinic.example
    trust_forwarded: bool = False  # rebuild the signed URL from X-Forwarded-Proto/-Host (a proxy you control)
    from_number: str | None = None  # sender for the trees' text messages
    fallback_number: str | None = None  # a person to dial when the engine cannot serve a call (the nurse line)
    api_base: str | None = None  # another Twilio API host (a regional edge; the tests' fake)
    announce_every: float = Field(30.0, gt=0)
    hold_music: str | None = None  # a URL Twilio can fetch; default: Twilio's own hold music


class EngineConfig(BaseModel):
    """``ivr-engine.yaml``: see ``ivr-engine.example.yaml`` for every key, commented."""

    model_config = ConfigDict(extra="forbid")

    listen: Listen = Field(default_factory=Listen)
    agents: str = "agents.yaml"
    queues: str = "queues.yaml"
    trees: Trees = Field(default_factory=Trees)
    hooks: str | None = None
    database: str | None = None  # prefer DATABASE_URL when the URL holds a password
    asterisk: Asterisk | None = None
    twilio: Twilio | None = None

    # filled in by load(): not in the file
    base_dir: Path = Field(default=Path("."), exclude=True)
    ari_password: str | None = Field(default=None, exclude=True, repr=False)
    ami_password: str | None = Field(default=None, exclude=True, repr=False)
    twilio_token: str | None = Field(default=None, exclude=True, repr=False)
    api_token: str | None = Field(default=None, exclude=True, repr=False)

    def path(self, p: str) -> Path:
        q = Path(p)
        if q.is_absolute():
            return q
        local = Path(os.path.normpath(self.base_dir / q))
        # with no config file, a fresh clone's sample files are found wherever `ivr serve` is started
        return local if local.exists() or self.base_dir != Path(".") else PACKAGE_ROOT / q


def load(path: str | Path | None, env: Mapping[str, str] | None = None) -> EngineConfig:
    """Read the file (or take the defaults), then apply the environment. Raises ConfigInvalid with file/line."""
    env = os.environ if env is None else env
    if path is not None:
        cfg = load_config(path, EngineConfig, docs="ivr-engine.example.yaml")
        cfg = cfg.model_copy(update={"base_dir": Path(path).resolve().parent})
    else:
        cfg = EngineConfig()
    listen = cfg.listen.model_copy(update={k: (int(env[e]) if k == "port" else env[e])
                                           for k, e in (("host", "IVR_HOST"), ("port", "IVR_PORT")) if env.get(e)})
    ast = cfg.asterisk
    if env.get("IVR_ARI_URL") and ast is None:
        ast = Asterisk()
    if ast is not None:
        over = {k: env[e] for k, e in (("ari_url", "IVR_ARI_URL"), ("ari_user", "IVR_ARI_USER"), ("app", "IVR_ARI_APP"),
                                       ("ami_host", "IVR_AMI_HOST"), ("ami_user", "IVR_AMI_USER")) if env.get(e)}
        if env.get("IVR_AMI_PORT"):
            over["ami_port"] = int(env["IVR_AMI_PORT"])
        ast = ast.model_copy(update=over)
        if not env.get("IVR_ARI_PASSWORD"):
            raise ConfigMissingSecret(
                "Asterisk is configured but IVR_ARI_PASSWORD is not set: export the password of the ari.conf "
                f"user {ast.ari_user!r} (secrets are never read from the config file)")
    tw = cfg.twilio
    if env.get("IVR_TWILIO_ACCOUNT_SID") and tw is None:
        tw = Twilio()
    if tw is not None:
        over_tw: dict[str, object] = {k: env[e] for k, e in (("account_sid", "IVR_TWILIO_ACCOUNT_SID"),
                                                             ("public_url", "IVR_PUBLIC_URL")) if env.get(e)}
        tw = tw.model_copy(update=over_tw)
        if not env.get("IVR_TWILIO_AUTH_TOKEN"):
            raise ConfigMissingSecret("Twilio is configured but IVR_TWILIO_AUTH_TOKEN is not set: export the account's "
                                      "auth token (it checks every webhook's signature)")
        if not tw.account_sid:
            raise ConfigMissingSecret("Twilio is configured but has no account_sid: set twilio.account_sid in the "
                                      "config file or IVR_TWILIO_ACCOUNT_SID")
    return cfg.model_copy(update={"twilio": tw, "twilio_token": env.get("IVR_TWILIO_AUTH_TOKEN"),
                                  "api_token": env.get("IVR_API_TOKEN"),
        "listen": listen, "asterisk": ast, "database": env.get("DATABASE_URL") or cfg.database,
        "ari_password": env.get("IVR_ARI_PASSWORD"), "ami_password": env.get("IVR_AMI_PASSWORD")})
