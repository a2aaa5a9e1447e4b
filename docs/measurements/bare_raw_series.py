"""A measurement, not part of datahub (docs/performance.md, 2026-12-05): the metered raw
series served without FastAPI, its reads on asynchronous psycopg.

Run it on the bench data set, then point the benchmark at it:

    LEAN_DB=postgresql://datahub@127.0.0.1:55432/datahub_bench_q2000x90 \
      uvicorn bare_raw_series:app --port 18911 --loop uvloop --http httptools --no-access-log
    datahub bench api --kinds raw_1d --clients 16 --api-url http://127.0.0.1:18911

Same statements as the API's route: key (remembered), rate slot (batched writer, the
API's own Together), device, readings, licences (async psycopg), charge (batched writer,
the API's CHARGES). JSON rendered with orjson.
"""

import asyncio
import contextlib
import os
import uuid
from datetime import UTC, datetime

import orjson
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from datahub.api.auth import RATE_SLOTS, Callers, presented_key
from datahub.api.metering import CHARGES
from datahub.api.writer import Writer
from datahub.config import FairShareSettings
from datahub.storage import access, usage

URL = os.environ["LEAN_DB"]
DEVICE = "SELECT id, dataset_id FROM device WHERE dev_eui = %s"
READINGS = """SELECT r.time, r.metric, r.value, dec.name FROM reading r LEFT JOIN decoder dec
 ON dec.id = r.decoder_id WHERE r.device_id = %s AND r.time >= %s AND r.time < %s
 AND r.metric = %s ORDER BY r.time, r.metric LIMIT 1001"""
LICENCES = """SELECT id, slug, licence_id, licence_name, licence_url, attribution
 FROM dataset WHERE id = ANY(%s) ORDER BY slug"""
state = {}


async def startup():
    sync = ConnectionPool(URL, min_size=4, max_size=4, open=True)
    state["sync"] = sync
    state["rates"] = Writer(sync, name="rate-writer", durable=False)
    state["ledger"] = Writer(sync, name="ledger-writer", durable=True)
    pool = AsyncConnectionPool(URL, min_size=8, max_size=8, open=False, kwargs={"autocommit": True})
    await pool.open()
    state["pool"] = pool
    state["callers"] = Callers(60.0)
    state["fs"] = FairShareSettings()


def err(status, msg):
    return Response(
        orjson.dumps({"error": {"status": status, "message": msg}}),
        status,
        media_type="application/json",
    )


async def readings(request):
    secret = presented_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
    callers = state["callers"]
    caller = callers.remembered(secret, client="x")
    if caller is None:

        def resolve():
            with state["sync"].connection() as conn:
                return callers.resolve(conn, secret, state["fs"], client="x")

        caller = await asyncio.to_thread(resolve)
    asked = (caller.subject, caller.requests_per_s)
    if not await state["rates"].run_async(
        lambda c: access.take_rate_slots(c, [asked])[0],
        key=caller.subject,
        together=RATE_SLOTS,
        item=asked,
    ):
        return err(429, "over the rate limit")
    q = request.query_params
    try:
        start = datetime.fromisoformat(q["from"])
        end = datetime.fromisoformat(q["to"])
        metric = q["metric"]
    except (KeyError, ValueError):
        return err(422, "bad parameters")
    dev_eui = request.path_params["dev_eui"].upper()
    async with state["pool"].connection() as conn:
        dev = await (await conn.execute(DEVICE, (dev_eui,))).fetchone()
        if dev is None or (caller.dataset_ids is not None and dev[1] not in caller.dataset_ids):
            return err(404, "no such device")
        rows = await (await conn.execute(READINGS, (dev[0], start, end, metric))).fetchall()
        lic = await (await conn.execute(LICENCES, ([dev[1]],))).fetchall()
    now = datetime.now(UTC)
    use = usage.Usage(
        uuid.uuid4(), caller.consumer_id, str(caller.purpose), "readings", {dev[1]: len(rows)}, now
    )

    def alone(conn):
        c = usage.charge_all(conn, [use])[0]
        return use.total if c.recorded else None

    charged = await state["ledger"].run_async(alone, key=caller.subject, together=CHARGES, item=use)
    if charged is None:
        return err(429, "quota")
    body = {
        "dev_eui": dev_eui,
        "items": [{"time": t, "metric": m, "value": v, "decoder": d} for t, m, v, d in rows],
        "next_cursor": None,
        "licences": [
            {
                "dataset": row[1],
                "licence": row[2],
                "name": row[3],
                "url": row[4],
                "attribution": row[5],
            }
            for row in lic
        ],
    }
    return Response(orjson.dumps(body), media_type="application/json")


@contextlib.asynccontextmanager
async def lifespan(app):
    await startup()
    yield


async def health(request):
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[Route("/v1/devices/{dev_eui}/readings", readings), Route("/health", health)],
    lifespan=lifespan,
)
