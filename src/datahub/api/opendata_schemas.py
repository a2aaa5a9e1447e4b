"""Models of the open-data routes: the bulk files and the open summaries."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from datahub.api.query import Rfc3339
from datahub.api.schemas import InModel, LicenceOut, OutModel, UtcTime
from datahub.domain import SLUG, City

DatasetSlug = Annotated[str, Field(pattern=SLUG.pattern, description="dataset slug")]


class BulkQuery(InModel):
    dataset: DatasetSlug | None = Field(default=None, description="only this dataset's files")
    period: Literal["day", "month"] | None = Field(
        default=None, description="only day files or only month files"
    )
    start: Rfc3339 | None = Field(
        default=None, alias="from", description="files whose period ends after this time"
    )
    end: Rfc3339 | None = Field(
        default=None, alias="to", description="files whose period starts before this time"
    )


class BulkFileOut(OutModel):
    dataset: str = Field(description="the dataset's slug")
    period: str = Field(description="a UTC day (2026-12-01) or a month (2026-12)")
    start: UtcTime = Field(serialization_alias="from")
    end: UtcTime = Field(serialization_alias="to")
    url: str = Field(description="where to download it (gzipped CSV)")
    rows: int = Field(description="readings in the file, header not counted")
    bytes: int
    sha256: str = Field(description="of the file as downloaded; also its ETag")
    version: int = Field(description="1, or higher where late data rewrote the file")
    written_at: UtcTime


class BulkFileListOut(OutModel):
    items: list[BulkFileOut]


class SummaryQuery(InModel):
    city: City | None = Field(default=None, description="one city; default: both")


class WasteCellOut(OutModel):
    city: City
    area: str | None = Field(description="the district; null: bins without one")
    bins: int | None = Field(description="bins with a current reading; null: fewer than k")
    full_share: float | None = Field(
        description="share of those bins filled above 80 %, 0..1; null: fewer than k bins"
    )
    shown: bool = Field(description="false: the cell has fewer than k bins and is hidden")


class WasteSummaryOut(OutModel):
    k: int = Field(description="the fewest bins a cell may show")
    full_above: float = Field(description="the fill level counted as full, 0..1")
    as_of: UtcTime
    cells: list[WasteCellOut]
    licences: list[LicenceOut] = Field(description="the licences of the datasets summarised")


class ParkingHourOut(OutModel):
    time: UtcTime = Field(description="start of the hour")
    bays: int = Field(description="bays that reported in the hour")
    free: float = Field(description="free bays, on average over the hour")


class ParkingCellOut(OutModel):
    city: City
    area: str | None = Field(description="the parking zone; null: bays without one")
    bays: int | None = Field(description="bays with a current state; null: fewer than k")
    free: int | None = Field(description="of those, free now; null: fewer than k")
    hours: list[ParkingHourOut] = Field(
        description="the last 24 hours; hours with fewer than k bays are left out"
    )
    shown: bool = Field(description="false: the cell has fewer than k bays and is hidden")


class ParkingSummaryOut(OutModel):
    k: int = Field(description="the fewest bays a cell, or an hour of it, may show")
    as_of: UtcTime
    cells: list[ParkingCellOut]
    licences: list[LicenceOut] = Field(description="the licences of the datasets summarised")
