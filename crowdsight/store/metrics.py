"""Metric time series: per-bucket aggregates written by the runner, re-bucketed on query."""

from __future__ import annotations

import math
from collections.abc import Mapping

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from crowdsight.core.errors import InputError
from crowdsight.store.records import MetricPoint
from crowdsight.store.tables import MetricRow

MAX_POINTS = 10_000
MAX_ROWS = 200_000


def record_metrics(
    session: Session,
    camera_id: str,
    ts_s: float,
    metrics: Mapping[str, float],
    storage_bucket_s: float,
) -> int:
    """Fold one sample per metric into its storage bucket (an upsert per metric).

    Storing aggregates per ``storage_bucket_s`` instead of raw samples keeps the table small
    (a 10 fps camera with 20 metrics would otherwise write 200 rows a second); queries cannot
    resolve finer than that bucket. Non-finite values are skipped.

    Returns:
        How many metric values were stored.
    """
    bucket = math.floor(ts_s / storage_bucket_s) * storage_bucket_s
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stored = 0
    for name, raw in metrics.items():
        value = float(raw)
        if not math.isfinite(value):
            continue
        stmt = insert(MetricRow).values(
            camera_id=camera_id,
            name=name,
            bucket_ts_s=bucket,
            sum=value,
            count=1,
            min=value,
            max=value,
            last=value,
        )
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["camera_id", "name", "bucket_ts_s"],
            set_={
                "sum": MetricRow.sum + excluded.sum,
                "count": MetricRow.count + 1,
                "min": _least(dialect, MetricRow.min, excluded.min),
                "max": _greatest(dialect, MetricRow.max, excluded.max),
                "last": excluded.last,
            },
        )
        session.execute(stmt)
        stored += 1
    return stored


def _least(dialect: str, a: object, b: object) -> object:
    from sqlalchemy import func

    # SQLite's two-argument min() is its scalar least(); PostgreSQL spells it least().
    return func.least(a, b) if dialect == "postgresql" else func.min(a, b)


def _greatest(dialect: str, a: object, b: object) -> object:
    from sqlalchemy import func

    return func.greatest(a, b) if dialect == "postgresql" else func.max(a, b)


def query_metrics(
    session: Session,
    *,
    camera_id: str,
    name: str,
    since: float | None,
    until: float | None,
    bucket_s: float,
) -> list[MetricPoint]:
    """The series of ``name`` for ``camera_id``, aggregated into ``bucket_s`` buckets.

    Raises:
        InputError: the window would yield more than 10 000 points (use a larger bucket).
    """
    if since is not None and until is not None and (until - since) / bucket_s > MAX_POINTS:
        raise InputError(
            f"{(until - since) / bucket_s:.0f} points requested (max {MAX_POINTS}): "
            "raise bucket_s or narrow since/until"
        )
    stmt = select(MetricRow).where(MetricRow.camera_id == camera_id, MetricRow.name == name)
    if since is not None:
        stmt = stmt.where(MetricRow.bucket_ts_s >= since)
    if until is not None:
        stmt = stmt.where(MetricRow.bucket_ts_s <= until)
    columns = (
        MetricRow.bucket_ts_s,
        MetricRow.sum,
        MetricRow.count,
        MetricRow.min,
        MetricRow.max,
        MetricRow.last,
    )
    rows = session.execute(
        stmt.with_only_columns(*columns).order_by(MetricRow.bucket_ts_s).limit(MAX_ROWS)
    ).all()
    # [sum, count, min, max, last] per output bucket; rows arrive in time order.
    acc: dict[float, list[float]] = {}
    for ts, total, count, lo, hi, last in rows:
        key = math.floor(ts / bucket_s) * bucket_s
        a = acc.get(key)
        if a is None:
            acc[key] = [total, count, lo, hi, last]
        else:
            a[0] += total
            a[1] += count
            a[2] = min(a[2], lo)
            a[3] = max(a[3], hi)
            a[4] = last
    if len(acc) > MAX_POINTS:
        raise InputError(f"more than {MAX_POINTS} points: raise bucket_s or narrow since/until")
    return [
        MetricPoint(ts_s=k, mean=a[0] / a[1], min=a[2], max=a[3], last=a[4], count=int(a[1]))
        for k, a in acc.items()
    ]


def metric_names(session: Session, camera_id: str | None) -> list[str]:
    """Distinct metric names stored (for one camera or all)."""
    stmt = select(MetricRow.name).distinct().order_by(MetricRow.name)
    if camera_id is not None:
        stmt = stmt.where(MetricRow.camera_id == camera_id)
    return list(session.scalars(stmt).all())


def delete_before(session: Session, cutoff_s: float) -> None:
    """Delete metric buckets that start before ``cutoff_s``."""
    session.execute(delete(MetricRow).where(MetricRow.bucket_ts_s < cutoff_s))
