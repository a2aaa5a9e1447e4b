"""Settings: a YAML file overlaid by DATAHUB_* environment variables, built once and passed in.

Precedence, highest first: keyword arguments, environment (`DATAHUB_DATABASE_URL`,
`DATAHUB_INGEST__BATCH_SIZE`, `DATAHUB_SOURCES` as JSON, ...), the YAML file named by
`--config` or `DATAHUB_CONFIG`, then the defaults below, which suit a local machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from datahub.domain import City, SourceFormat
from datahub.errors import ConfigError

LOCAL_DATABASE_URL = "postgresql://datahub@127.0.0.1:55432/datahub"
LOCAL_BROKER_URL = "mqtt://127.0.0.1:18830"

# In a source's client_id: the name of the ingest worker (ingest.worker).
WORKER_PLACEHOLDER = "{worker}"

DEFAULT_TOPICS = {
    SourceFormat.TTN_V3: "v3/+/devices/+/up",
    SourceFormat.CHIRPSTACK_V4_JSON: "application/+/device/+/event/up",
    SourceFormat.CHIRPSTACK_V4_PROTOBUF: "application/+/device/+/event/up",
    SourceFormat.CHIRPSTACK_V3_JSON: "application/+/device/+/event/up",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(_Section):
    """TLS towards a broker; an empty section means TLS with the system's CA store."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False


class BrokerEndpoint(_Section):
    host: str
    port: int
    tls: bool


def parse_broker_url(url: str) -> BrokerEndpoint:
    """Split `mqtt://host:port` or `mqtts://host:port` into its parts."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise ConfigError(
            f"broker URL {url!r} must look like mqtt://host:port or mqtts://host:port"
        )
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerEndpoint(host=parts.hostname, port=parts.port or (8883 if tls else 1883), tls=tls)


class StorageApiSettings(_Section):
    """The Things Stack Storage Integration of one application, read by `datahub backfill`
    and by the ingest after a QoS 0 source reconnects."""

    url: str = Field(description="the cluster, e.g. https://eu1.cloud.thethings.network")
    application_id: str
    api_key: SecretStr = Field(description="an API key with the right to read stored messages")
    page_limit: int = Field(default=1000, ge=1, le=10_000, description="uplinks per request")
    timeout_s: float = Field(default=30.0, gt=0)


class SourceSettings(_Section):
    """One network server's MQTT feed."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]
    city: City
    format: SourceFormat
    broker_url: str | None = Field(
        default=None, description="mqtt://host:port or mqtts://host:port; default: broker_url"
    )
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsSettings | None = None
    topic: str | None = Field(default=None, description="topic filter; default per format")
    qos: Literal[0, 1] = 1
    mqtt_version: Literal["3.1.1", "5"] = Field(
        default="3.1.1", description="The Things Stack speaks 3.1.1 only; Mosquitto both"
    )
    client_id: str | None = Field(
        default=None,
        description="fixed client id, needed for a persistent QoS 1 session; {worker} "
        "stands for ingest.worker",
    )
    storage_api: StorageApiSettings | None = Field(
        default=None, description="TTN Storage Integration, to back-fill what MQTT missed"
    )

    @property
    def topic_filter(self) -> str:
        return self.topic or DEFAULT_TOPICS[self.format]


class DatabaseSettings(_Section):
    pool_size: int = Field(default=8, ge=1, le=256, description="connections per API process")
    pool_queue: int = Field(
        default=64,
        ge=1,
        description="requests of one API process that may wait for a connection; "
        "more are answered 429",
    )
    pool_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="how long a request waits for a connection before it is answered 429 "
        "(503 if the database is unreachable)",
    )
    connect_timeout_s: float = Field(default=5.0, gt=0)
    statement_timeout_ms: int = Field(
        default=30_000, ge=0, description="the server cancels a statement running longer"
    )
    response_timeout_s: float = Field(
        default=40.0,
        gt=0,
        description="longest wait for any answer of the server; then the connection is closed",
    )
    keepalive_idle_s: int = Field(
        default=10, ge=1, description="TCP keepalive probes start after this much silence"
    )
    keepalive_interval_s: int = Field(default=5, ge=1, description="between keepalive probes")
    keepalive_count: int = Field(
        default=3, ge=1, description="unanswered keepalive probes that end a connection"
    )
    tcp_user_timeout_ms: int = Field(
        default=30_000, ge=0, description="data unacknowledged this long ends a connection"
    )
    replica_url: SecretStr | None = Field(
        default=None,
        description="a streaming replica of database_url that the API reads from; "
        "none: the API reads from database_url",
    )
    replica_max_lag_s: float = Field(
        default=10.0,
        ge=1,
        description="the most recent writes a read on the replica may miss, in seconds; "
        "past it, reads go to the primary (or are refused: replica_lagging)",
    )
    replica_lagging: Literal["primary", "unavailable"] = Field(
        default="primary",
        description="while the replica is further behind or unreachable: read on the "
        "primary, or answer 503",
    )
    transaction_pooling: bool = Field(
        default=False,
        description="the URLs lead to a pooler in transaction mode (PgBouncer): no "
        "statement prepared on the server, no settings sent at start-up",
    )

    @field_validator("replica_url")
    @classmethod
    def _replica_postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _postgres_url(value)

    @model_validator(mode="after")
    def _server_cancels_first(self) -> DatabaseSettings:
        if self.statement_timeout_ms and self.response_timeout_s * 1000 <= (
            self.statement_timeout_ms
        ):
            raise ValueError(
                "database.response_timeout_s must exceed statement_timeout_ms, so that the "
                "server cancels a slow statement before the client gives up on the connection"
            )
        return self


class IngestSettings(_Section):
    batch_size: int = Field(default=2000, ge=1, le=100_000, description="messages per commit")
    batch_wait_ms: int = Field(default=200, ge=1, description="longest wait to fill a batch")
    queue_limit: int = Field(
        default=20_000, ge=1, description="received, uncommitted messages held in memory"
    )
    max_message_bytes: int = Field(
        default=65_536, ge=256, description="larger MQTT messages are dead-lettered unread"
    )
    max_payload_bytes: int = Field(
        default=242, ge=1, description="largest LoRaWAN application payload accepted"
    )
    max_clock_skew_s: int = Field(
        default=3600, ge=0, description="uplinks dated further in the future are rejected"
    )
    max_age_days: int = Field(default=400, ge=1, description="older uplinks are rejected")
    dead_letter_head_bytes: int = Field(
        default=16_384,
        ge=0,
        description="bytes of a dead-lettered message kept; with its length and SHA-256",
    )
    retry_max_backoff_s: float = Field(
        default=30.0, gt=0, description="longest pause between attempts of a failing batch"
    )
    probe_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="while the database does not answer, how often it is probed to resume",
    )
    ready_stall_s: float = Field(
        default=30.0,
        gt=0,
        description="not ready when messages wait and no batch committed for this long",
    )
    rollup_refresh_s: float = Field(
        default=1.0,
        ge=0,
        description="how often the rollups of changed hours are recomputed; 0: never",
    )
    worker: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$",
        description="this worker's name among the ingest processes sharing the sources; "
        "the same across restarts",
    )
    metrics_host: str = Field(default="127.0.0.1", description="address of /metrics and /health")
    metrics_port: int = Field(
        default=9101, ge=0, le=65535, description="port of /metrics and /health; 0: none"
    )


class CatalogSettings(_Section):
    """The device catalog beyond the built-in profiles: vendor JavaScript codecs."""

    codecs_dir: Path | None = Field(
        default=None, description="<vendor>/<model>.js + .yaml codecs; rescanned at run time"
    )
    codec_timeout_ms: int = Field(default=100, ge=1, le=10_000, description="per codec call")
    codec_max_memory_mb: int = Field(default=64, ge=8, le=4096, description="V8 heap per codec")


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(
        default=1, ge=1, le=64, description="API processes sharing the port (uvicorn workers)"
    )
    page_size_default: int = Field(default=1000, ge=1)
    page_size_max: int = Field(default=10_000, ge=1)
    max_buckets: int = Field(
        default=10_000, ge=1, description="most time buckets one aggregate query may return"
    )
    max_raw_range_days: int = Field(default=31, ge=1, description="longest raw-series range")
    public_base_url: str | None = None


class DashboardSettings(_Section):
    """The public dashboard at `/`: where its map's background tiles come from."""

    tile_url: str = Field(
        default="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        description="XYZ tile URL template with {z}, {x}, {y} (and {s}); empty: no tiles",
    )
    tile_attribution: str = Field(
        default='&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> '
        "contributors",
        description="the tiles' credit shown on the map; HTML",
    )
    tile_max_zoom: int = Field(default=19, ge=1, le=22, description="deepest zoom the tiles have")


class FairShareSettings(_Section):
    """Access, metering and rate limits of the API; prices live in the database."""

    anonymous_requests_per_s: int = Field(
        default=20, ge=1, description="requests per second per anonymous caller (client address)"
    )
    consumer_requests_per_s: int = Field(
        default=50, ge=1, description="requests per second of a consumer that sets none"
    )
    key_cache_s: float = Field(
        default=5.0,
        ge=0,
        description="how long an API process remembers a key, its grants and the open "
        "datasets: a revocation or a grant takes effect within this time; 0: not at all",
    )
    aggregate_point_weight: int = Field(
        default=1, ge=1, description="observations one aggregate point counts as, per dataset"
    )
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")


class Settings(BaseSettings):
    """Everything datahub can be told; see docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix="DATAHUB_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database_url: SecretStr = Field(
        default=SecretStr(LOCAL_DATABASE_URL),
        description="postgresql://user:password@host:port/dbname",
    )
    broker_url: str = Field(
        default=LOCAL_BROKER_URL, description="broker of every source that names none"
    )
    database: DatabaseSettings = DatabaseSettings()
    ingest: IngestSettings = IngestSettings()
    api: ApiSettings = ApiSettings()
    dashboard: DashboardSettings = DashboardSettings()
    fairshare: FairShareSettings = FairShareSettings()
    catalog: CatalogSettings = CatalogSettings()
    sources: tuple[SourceSettings, ...] = ()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "text"

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        return _postgres_url(value)

    @model_validator(mode="after")
    def _unique_sources(self) -> Settings:
        names = [s.name for s in self.sources]
        if len(names) != len(set(names)):
            raise ValueError("source names must be unique")
        for source in self.sources:
            parse_broker_url(self.broker_for(source))
        return self

    def broker_for(self, source: SourceSettings) -> str:
        return source.broker_url or self.broker_url

    def client_id_for(self, source: SourceSettings) -> str:
        """The MQTT client id of `source` in this ingest worker: its `client_id` with
        `{worker}` replaced by `ingest.worker`, by default `datahub-ingest-<name>`, or
        `datahub-ingest-<worker>-<name>` for a named worker.

        Workers sharing a source need ids of their own (an id already connected is taken
        over), and the same ids after a restart (their sessions hold their share)."""
        worker = self.ingest.worker
        if source.client_id is None:
            prefix = f"datahub-ingest-{worker}" if worker else "datahub-ingest"
            return f"{prefix}-{source.name}"
        if WORKER_PLACEHOLDER in source.client_id and worker is None:
            raise ConfigError(
                f"source {source.name}: client_id {source.client_id!r} names {{worker}}; "
                "set ingest.worker (DATAHUB_INGEST__WORKER) to this worker's name"
            )
        return source.client_id.replace(WORKER_PLACEHOLDER, worker or "")

    @property
    def conninfo(self) -> str:
        """The database URL as libpq takes it."""
        return _libpq_url(self.database_url)

    @property
    def replica_conninfo(self) -> str | None:
        """The replica's URL as libpq takes it; None without a replica."""
        replica = self.database.replica_url
        return None if replica is None else _libpq_url(replica)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls))


def _postgres_url(value: SecretStr) -> SecretStr:
    scheme = urlsplit(value.get_secret_value()).scheme
    if scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise ValueError("a database URL must be a postgresql:// URL")
    return value


def _libpq_url(value: SecretStr) -> str:
    return value.get_secret_value().replace("postgresql+psycopg://", "postgresql://")


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings once: YAML file (argument or DATAHUB_CONFIG), environment, overrides."""
    path = config_file or (Path(p) if (p := os.environ.get("DATAHUB_CONFIG")) else None)
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    config = {**Settings.model_config, "yaml_file": path}
    bound: type[Settings] = type("Settings", (Settings,), {"model_config": config})
    try:
        return bound(**overrides)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
