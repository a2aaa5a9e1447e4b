"""A small world of datasets of every licence class and the consumers who may read them.

Three Dortmund climate sensors, one per dataset, report temperatures far apart (open 10,
commercial 100, restricted 1000), so any leak of a restricted value into an aggregate shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from api_helpers import Seed, at

from datahub.fairshare import keys
from datahub.storage import consumers, datasets
from datahub.storage.consumers import ConsumerFields
from datahub.storage.datasets import DatasetFields

OPEN, COMMERCIAL, RESTRICTED = "70B3D57E00000001", "70B3D57E00000002", "70B3D57E00000003"
VALUES = {OPEN: 10.0, COMMERCIAL: 100.0, RESTRICTED: 1000.0}
DATASET_OF = {OPEN: "dew21", COMMERCIAL: "sws-waste", RESTRICTED: "sws-parking"}


@dataclass(frozen=True)
class World:
    keys: dict[str, str]  # consumer slug -> API key
    consumer_ids: dict[str, int]

    def headers(self, who: str) -> dict[str, str]:
        """Request headers of a consumer; `anonymous` sends no key."""
        return {} if who == "anonymous" else {"Authorization": f"Bearer {self.keys[who]}"}


def dataset(conn: psycopg.Connection, seed: Seed, slug: str, licence_class: str) -> int:
    dataset_id = datasets.insert_dataset(
        conn,
        slug=slug,
        supplier_id=seed.supplier_ids["stadtwerke-schwerte"],
        fields=DatasetFields(
            name=slug,
            licence_class=licence_class,
            licence_id="proprietary",
            licence_name="Licensed to granted consumers",
            licence_url=f"https://example.org/licences/{slug}",
            attribution=f"Stadtwerke Schwerte ({slug})",
        ),
    )
    assert dataset_id is not None
    return dataset_id


def consumer(
    conn: psycopg.Connection,
    slug: str,
    *,
    purpose: str,
    grants: tuple[int, ...] = (),
    scopes: tuple[str, ...] = ("read",),
    monthly_quota: int | None = None,
    requests_per_s: int | None = None,
    supplier_id: int | None = None,
) -> tuple[int, str]:
    """Add a consumer with one key and its grants; return (id, key)."""
    consumer_id = consumers.insert_consumer(
        conn,
        slug=slug,
        fields=ConsumerFields(
            name=slug,
            purpose=purpose,
            supplier_id=supplier_id,
            monthly_quota=monthly_quota,
            requests_per_s=requests_per_s,
        ),
    )
    assert consumer_id is not None
    new = keys.generate_key()
    consumers.insert_key(
        conn,
        consumer_id=consumer_id,
        prefix=new.prefix,
        key_hash=new.key_hash,
        scopes=scopes,
        label="test",
    )
    for dataset_id in grants:
        consumers.insert_grant(conn, consumer_id=consumer_id, dataset_id=dataset_id)
    return consumer_id, new.secret


def build_world(conn: psycopg.Connection, seed: Seed) -> World:
    """Datasets of each class, a sensor in each, and a consumer of each kind."""
    waste = dataset(conn, seed, "sws-waste", "commercial")
    parking = dataset(conn, seed, "sws-parking", "restricted")
    for dev_eui, value in VALUES.items():
        supplier = "dew21" if dev_eui == OPEN else "stadtwerke-schwerte"
        seed.device(dev_eui, supplier=supplier, dataset=DATASET_OF[dev_eui])
        seed.readings(dev_eui, "temperature", {at(hours=h): value + h for h in range(3)})
    made = {
        "department": consumer(conn, "department", purpose="public_interest", grants=(parking,)),
        "company": consumer(conn, "company", purpose="commercial", grants=(waste,)),
        "admin": consumer(conn, "admin", purpose="public_interest", scopes=("read", "admin")),
        "stranger": consumer(conn, "stranger", purpose="research"),
        # Acts for the supplier of both datasets: reads them without a grant.
        "supplier": consumer(
            conn,
            "supplier",
            purpose="commercial",
            supplier_id=seed.supplier_ids["stadtwerke-schwerte"],
        ),
    }
    return World(
        keys={slug: key for slug, (_, key) in made.items()},
        consumer_ids={slug: consumer_id for slug, (consumer_id, _) in made.items()},
    )
