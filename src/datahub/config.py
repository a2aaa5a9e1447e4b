"""Settings: a YAML file overlaid by DATAHUB_* environment variables, built once and passed in.

Precedence, highest first: keyword arguments, environment (`DATAHUB_DATABASE_URL`,
`DATAHUB_INGEST__BATCH_SIZE`, `DATAHUB_SOURCES` as JSON, ...), the YAML file named by
`--config` or `DATAHUB_CONFIG`, then the defaults below, which suit a local machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from datahub.domain import City, SourceFormat
from datahub.errors import ConfigError
from datahub.opendata import vocabularies

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
    pool_size: int = Field(
        default=8,
        ge=1,
        le=256,
        description="connections per pool of an API process (reads on threads, reads on the "
        "event loop, writes)",
    )
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
    keep_alive_s: int = Field(
        default=75,
        ge=1,
        description="how long an idle client connection is kept open; longer than the idle "
        "time of clients' and proxies' connection pools, so none sends on one just closed",
    )
    page_size_default: int = Field(default=1000, ge=1)
    page_size_max: int = Field(default=10_000, ge=1)
    max_buckets: int = Field(
        default=10_000, ge=1, description="most time buckets one aggregate query may return"
    )
    max_raw_range_days: int = Field(default=31, ge=1, description="longest raw-series range")
    public_base_url: str | None = None


class SensorThingsSettings(_Section):
    """The OGC SensorThings API at /sta/v1.1 and its MQTT publication (docs/sensorthings.md)."""

    top_default: int = Field(default=100, ge=1, description="entities per page without $top")
    top_max: int = Field(default=10_000, ge=1, description="largest $top accepted")
    skip_max: int = Field(
        default=10_000, ge=0, description="largest $skip accepted; @iot.nextLink pages deeper"
    )
    count_exact_max: int = Field(
        default=100_000,
        ge=0,
        description="$count counts up to this many exactly, beyond it the planner estimates",
    )
    statement_timeout_ms: int = Field(
        default=10_000, ge=100, description="longest a SensorThings request may query"
    )
    mqtt_publish: bool = Field(
        default=True, description="the ingest publishes new Observations of open datasets"
    )
    mqtt_queue: int = Field(
        default=10_000,
        ge=1,
        description="committed batches waiting to be published; more are dropped",
    )


class Basemap(NamedTuple):
    """A tile server the dashboard knows by name: URL template, credit (HTML), deepest zoom."""

    tile_url: str
    attribution: str
    max_zoom: int


# basemap.de Web Raster is a WMTS; its GLOBAL_WEBMERCATOR matrix set numbers tiles as XYZ
# does, with the row ({y}) before the column ({x}) in the RESTful URL. Its licence
# (dl-de/by-2-0) asks for the credit given here.
_BASEMAPDE_URL = (
    "https://sgx.geodatenzentrum.de/wmts_basemapde/tile/1.0.0/de_basemapde_web_raster_{style}"
    "/default/GLOBAL_WEBMERCATOR/{{z}}/{{y}}/{{x}}.png"
)
_BASEMAPDE_CREDIT = (
    '&copy; <a href="https://basemap.de/">basemap.de</a> / '
    '<a href="https://www.bkg.bund.de/">BKG</a> '
    '(<a href="https://www.govdata.de/dl-de/by-2-0">dl-de/by-2-0</a>)'
)
BASEMAPS = {
    "openstreetmap": Basemap(
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
        19,
    ),
    "basemap.de": Basemap(_BASEMAPDE_URL.format(style="farbe"), _BASEMAPDE_CREDIT, 18),
    "basemap.de-grau": Basemap(_BASEMAPDE_URL.format(style="grau"), _BASEMAPDE_CREDIT, 18),
}


class DashboardSettings(_Section):
    """The public dashboard at `/`: where its map's background tiles come from.

    `basemap` names a known tile server; `tile_url` (with `tile_attribution`) replaces it
    by any other, e.g. the city's own.
    """

    basemap: Literal["openstreetmap", "basemap.de", "basemap.de-grau"] = Field(
        default="openstreetmap", description="a known tile server, used unless tile_url is set"
    )
    tile_url: str | None = Field(
        default=None,
        description="XYZ tile URL template with {z}, {x}, {y} (and {s}); empty: no tiles",
    )
    tile_attribution: str | None = Field(
        default=None, description="the credit of tile_url's tiles, shown on the map; HTML"
    )
    tile_max_zoom: int | None = Field(
        default=None, ge=1, le=22, description="deepest zoom tile_url's tiles have"
    )

    @property
    def tiles(self) -> Basemap:
        """The tile server in use: `tile_url` if set, else the named `basemap`."""
        preset = BASEMAPS[self.basemap]
        if self.tile_url is None:
            return preset
        return Basemap(
            self.tile_url,
            self.tile_attribution if self.tile_attribution is not None else "",
            self.tile_max_zoom or preset.max_zoom,
        )


class OpenDataSettings(_Section):
    """The open-data catalogue (DCAT-AP.de), the bulk files and the open summaries."""

    title_de: str = Field(
        default="Offene Sensordaten Dortmund und Schwerte", min_length=1, max_length=500
    )
    title_en: str = Field(
        default="Open sensor data of Dortmund and Schwerte", min_length=1, max_length=500
    )
    description_de: str = Field(
        default="Messwerte der LoRaWAN-Sensoren der gemeinsamen Datenplattform der Städte "
        "Dortmund und Schwerte.",
        min_length=1,
    )
    description_en: str = Field(
        default="Readings of the LoRaWAN sensors of the joint data platform of the cities of "
        "Dortmund and Schwerte.",
        min_length=1,
    )
    publisher: str = Field(
        default="Datahub Dortmund und Schwerte",
        min_length=1,
        description="who publishes the catalogue (a dataset's publisher is its supplier)",
    )
    contact_name: str = Field(
        default="Datahub-Betrieb", min_length=1, description="contact of datasets that set none"
    )
    contact_email: str = Field(
        default="opendata@datahub.invalid", description="contact e-mail of datasets that set none"
    )
    contributor_id: str = Field(
        default="http://dcat-ap.de/def/contributors/openNRW",
        description="dcatde:contributorID of datasets that set none: the system that delivers "
        "the metadata to GovData",
    )
    sensorthings: bool | None = Field(
        default=None,
        description="list a SensorThings API distribution per dataset; null: when the API "
        "serves /sta/v1.1",
    )
    bulk_dir: Path | None = Field(
        default=None, description="where the bulk files are written and served from; none: no files"
    )
    bulk_delay_minutes: int = Field(
        default=60,
        ge=0,
        le=24 * 60,
        description="how long after a day's end (UTC) its file is written: late uplinks' time",
    )
    min_cell_devices: int = Field(
        default=5, ge=1, description="fewest devices a cell of an open summary may show"
    )
    summary_max_age_hours: int = Field(
        default=24,
        ge=1,
        description="a device whose newest reading is older is left out of the summaries now",
    )

    @field_validator("contributor_id")
    @classmethod
    def _contributor(cls, value: str) -> str:
        if not vocabularies.is_contributor_id(value):
            raise ValueError(f"{value!r} is not an IRI of the dcat-ap.de contributor list")
        return value

    @field_validator("contact_email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not vocabularies.is_email(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value


class PrivacySettings(_Section):
    """What callers without a grant see of private owners' and personal devices
    (docs/privacy.md)."""

    grid_m: float = Field(
        default=250.0,
        ge=10,
        le=10_000,
        description="the cell size, in metres, of the grid a private owner's position snaps to",
    )
    grid_latitude: float = Field(
        default=51.5,
        ge=-80,
        le=80,
        description="the latitude at which the grid's cells are square (the hub's cities)",
    )
    k_min: int = Field(
        default=5,
        ge=2,
        description="fewest personal devices an aggregate of their readings is published over",
    )
    public_id_key: SecretStr | None = Field(
        default=None,
        description="the key of the devices' public ids (HMAC-SHA-256 of the DevEUI), at "
        "least 32 characters; `datahub migrate` stores it in the database. None: the key "
        "generated once by the migration stays. A new key gives every device a new public id",
    )

    @field_validator("public_id_key")
    @classmethod
    def _key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("the public id key needs at least 32 characters")
        return value


class OmbudsmanSettings(_Section):
    """The ombudsman for data value and data ethics, whom every transparency report names
    (docs/fair-share.md): the cities appoint the office; an administrator sets it here."""

    name: str | None = Field(
        default=None, min_length=1, description="the office, e.g. 'Ombudsstelle Datenwert'"
    )
    email: str | None = Field(default=None, min_length=3, description="how to write to it")
    url: str | None = Field(default=None, pattern=r"^https?://", description="its web page")
    postal_address: str | None = Field(default=None, min_length=1, description="one line")


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
    idempotency_keys_kept_s: int = Field(
        default=86_400,
        ge=60,
        description="how long an Idempotency-Key and the answer it got are kept: a replay "
        "within this time gets that answer again; after it, the key is new (and pruned)",
    )
    idempotency_answer_max_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="the largest answer kept for an Idempotency-Key: a request with a key "
        "whose answer would be larger is refused (400), nothing served or charged",
    )
    ombudsman: OmbudsmanSettings = OmbudsmanSettings()


class HealthSettings(_Section):
    """Device and gateway health (docs/operations.md): what late and silent mean, and how
    often the ingest's health refresher recomputes it."""

    late_after_intervals: float = Field(
        default=1.5, gt=1, description="a device is late after this many reporting intervals"
    )
    silent_after_intervals: float = Field(
        default=3.0, gt=1, description="and silent after this many"
    )
    gateway_silent_after_s: int = Field(
        default=3600, ge=60, description="a gateway that heard nothing this long is silent"
    )
    refresh_s: float = Field(
        default=10.0, ge=0, description="how often the ingest looks for devices due; 0: never"
    )
    min_age_s: int = Field(
        default=60, ge=0, description="a device heard again is recomputed at most this often"
    )
    max_age_s: int = Field(
        default=3600, ge=60, description="every device is recomputed at least this often"
    )

    @model_validator(mode="after")
    def _ordered(self) -> HealthSettings:
        if self.silent_after_intervals <= self.late_after_intervals:
            raise ValueError("health.silent_after_intervals must exceed late_after_intervals")
        return self


class SmtpSettings(_Section):
    """The mail server that alert e-mails are sent through."""

    host: str = Field(min_length=1, pattern=r"^[A-Za-z0-9.:\[\]-]+$")
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="STARTTLS on a plain port, TLS from the start, or none"
    )
    username: str | None = None
    password: SecretStr | None = None
    from_address: str = Field(
        pattern=r"^[^@\s<>]+@[^@\s<>]+$", description="the sender, e.g. alerts@example.org"
    )
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _credentials(self) -> SmtpSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("alerts.smtp needs both username and password, or neither")
        return self


class AlertSettings(_Section):
    """Delivery of alert notifications (rules and alarms live in the database)."""

    smtp: SmtpSettings | None = Field(default=None, description="none: no e-mail channel")
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)
    delivery_attempts: int = Field(
        default=10, ge=1, le=100, description="attempts per notification before it is failed"
    )
    retry_base_s: float = Field(default=5.0, gt=0, description="first back-off; doubles")
    retry_max_s: float = Field(default=3600.0, gt=0, description="longest back-off")
    delivery_poll_s: float = Field(
        default=2.0, gt=0, description="how often the delivery worker looks for pending ones"
    )
    scheduler_s: float = Field(
        default=30.0, ge=0, description="how often silence rules are checked; 0: never"
    )
    rule_cache_s: float = Field(
        default=5.0, ge=0, description="how long the ingest keeps the rules it evaluates"
    )


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
    sensorthings: SensorThingsSettings = SensorThingsSettings()
    fairshare: FairShareSettings = FairShareSettings()
    opendata: OpenDataSettings = OpenDataSettings()
    privacy: PrivacySettings = PrivacySettings()
    catalog: CatalogSettings = CatalogSettings()
    health: HealthSettings = HealthSettings()
    alerts: AlertSettings = AlertSettings()
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
        settings = bound(**overrides)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return _codecs_dir_beside(settings, path)


def _codecs_dir_beside(settings: Settings, config_file: Path | None) -> Settings:
    """Resolve a relative `catalog.codecs_dir` of the config file against the file's folder.

    Every process and command given the same file then finds the same directory, whatever
    its working directory (a service's is rarely the operator's). One set elsewhere (the
    environment, an argument) stays relative to the working directory.
    """
    codecs_dir = settings.catalog.codecs_dir
    if config_file is None or codecs_dir is None or codecs_dir.is_absolute():
        return settings
    try:
        document = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return settings
    catalog = document.get("catalog") if isinstance(document, dict) else None
    written = catalog.get("codecs_dir") if isinstance(catalog, dict) else None
    if written is None or Path(str(written)) != codecs_dir:
        return settings
    resolved = (config_file.resolve().parent / codecs_dir).resolve()
    return settings.model_copy(
        update={"catalog": settings.catalog.model_copy(update={"codecs_dir": resolved})}
    )
