"""`crowdsight eval tracking`: MOTA / IDF1 / HOTA on MOTChallenge files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, cast

import typer
from rich.console import Console

from crowdsight.cli.apps import eval_app
from crowdsight.core.errors import InputError
from crowdsight.tracking.offline import OFFLINE_MODES, RECORDING_MODE

console = Console(stderr=True)


@eval_app.command("tracking")
def eval_tracking(
    gt: Annotated[Path, typer.Option(help="Ground truth, MOTChallenge gt.txt.")],
    detections: Annotated[
        Path | None,
        typer.Option(help="Public detections (frame,-1,x,y,w,h,score,...) to run the tracker on."),
    ] = None,
    results: Annotated[
        Path | None,
        typer.Option(help="Score this tracker output instead of running crowdsight's tracker."),
    ] = None,
    min_score: Annotated[
        float | None,
        typer.Option(help="Drop detections scored below this before tracking."),
    ] = None,
    fps: Annotated[
        float, typer.Option(min=0.1, help="Sequence frame rate (MOT15 TUD: 25).")
    ] = 25.0,
    stride: Annotated[
        int,
        typer.Option(
            min=1,
            help="Keep every Nth frame (1, 1+N, ...) of detections and gt: a camera at fps/N.",
        ),
    ] = 1,
    iou: Annotated[
        float, typer.Option(min=0.01, max=1, help="IoU for a match (MOTChallenge: 0.5).")
    ] = 0.5,
    offline_mode: Annotated[
        str,
        typer.Option(
            "--offline",
            help="Offline post-processing of the whole run (crowdsight.tracking.offline): "
            "none | linear (tentative starts + ByteTrack's linear filling of gaps under "
            "2/3 s) | link (+ appearance-free tracklet linking over gaps up to 1 s, the "
            "default) | gsi (+ StrongSORT's Gaussian smoothing).",
        ),
    ] = RECORDING_MODE,
    interpolate: Annotated[
        bool,
        typer.Option(help="--no-interpolate: score the online output as is (--offline none)."),
    ] = True,
    adaptive_scores: Annotated[
        bool,
        typer.Option(
            help="Score thresholds from the Otsu split of the detections' own scores "
            "(crowdsight.tracking.scores) instead of ByteTrack's fixed 0.7 / 0.6."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON line last.")] = False,
) -> None:
    """Score tracking against ground truth; MOT15 rules (every gt row with conf != 0 counts).

    With --detections, crowdsight's tracker (default settings) runs on the detections and
    its output is scored; with --results, a given tracker output is scored as is.
    With --stride N only frames 1, 1+N, ... of both files are kept (a camera at fps/N);
    the tracker sees the real timestamps of those frames. Percentages are 0-100.
    A recording is scored after offline post-processing (`crowdsight.tracking.offline`,
    --offline, "link" by default; --no-interpolate is --offline none); the JSON's "offline"
    key says which ran, "linked_joins" how many tracklets linking joined.
    """
    from crowdsight.eval.mot import (
        load_mot_txt,
        record_mot_tracking,
        score_mot,
        track_rows_to_mot,
    )
    from crowdsight.tracking import Tracker
    from crowdsight.tracking.offline import OfflineMode

    if (detections is None) == (results is None):
        raise InputError("give exactly one of --detections (run the tracker) or --results")
    if offline_mode not in OFFLINE_MODES:
        raise InputError(f"--offline {offline_mode!r}: use one of {', '.join(OFFLINE_MODES)}")
    truth = load_mot_txt(gt).every_nth(stride)
    offline: dict[str, str | int] = {"offline": "none (scored --results as given)"}
    if results is not None:
        output = load_mot_txt(results).every_nth(stride)
        source = f"results {results.name}"
    else:
        assert detections is not None
        dets = load_mot_txt(detections).every_nth(stride)
        if min_score is not None:
            dets = dets.filter_scores(min_score)
        recorder = record_mot_tracking(
            dets,
            Tracker(frame_rate=fps, keep_unconfirmed=True, adaptive_scores=adaptive_scores),
            fps=fps,
            stride=stride,
        )
        mode = cast(OfflineMode, offline_mode if interpolate else "none")
        rows = recorder.rows(mode)
        output = track_rows_to_mot(rows, dets.num_frames)
        offline = {
            "offline": mode,
            **{f"rows_{k}": v for k, v in rows.counts().items()},
            "linked_joins": rows.joins,
            "score_thresholds": "adaptive (Otsu)" if adaptive_scores else "fixed 0.7 / 0.6",
        }
        how = "online" if mode == "none" else f"online + offline {mode}"
        source = f"crowdsight tracker ({how}) on {detections.name}"
    if stride > 1:
        source += f", every {stride}th frame"
    scores = score_mot(truth, output, iou_threshold=iou)
    console.print(
        f"{source}: MOTA {scores.mota:.1f}  IDF1 {scores.idf1:.1f}  HOTA {scores.hota:.1f}  "
        f"IDs {scores.id_switches}  FP {scores.false_positives}  FN {scores.false_negatives}  "
        f"Rcll {scores.recall:.1f}  Prcn {scores.precision:.1f}  "
        f"MT {scores.mostly_tracked}  ML {scores.mostly_lost}  FM {scores.fragmentations}",
        highlight=False,
        soft_wrap=True,
    )
    summary = {
        "mota": round(scores.mota, 2),
        "idf1": round(scores.idf1, 2),
        "hota": round(scores.hota, 2),
        "id_switches": scores.id_switches,
        **offline,
    }
    if as_json:
        print(json.dumps({**scores.to_dict(), **summary}))
    else:
        print(json.dumps(summary))
