"""SS3D training rounds (3d-mining.md §1.4), after the normal training when ``ss3d_iterations`` > 0.

Each round:

1. **mine the training frames** with the current model (:mod:`.bank`: raw + one augmented view,
   calibrated thresholds; known objects = the frame's labels and what the bank already holds) and
   add the confident pseudo labels to the bank, which only grows, as in SS3D;
2. the free predictions that are *not* confident are the frame's **unreliable regions**: objects
   the detector suspects but nobody labelled. :class:`~.mm.YmirReliableBackground` removes the
   points inside them (enlarged by 0.1 m) while training, so they are not learnt as background;
3. **train** ``ss3d_epochs`` more epochs from the current weights on labels + bank, with a fresh
   cosine schedule, then evaluate; the ``best`` / ``last`` stages are updated as usual.

Per round ``/out/ss3d/round<k>.json`` reports thresholds and counts, and ``/out/ss3d/bank`` holds
the bank (mmdet3d dbinfos, as the mining task writes it). Rounds run in one process.
With ``ss3d_paste`` > 0 the rounds also paste bank instances into the frames (SS3D's point filling,
:func:`paste_step`).
"""
from __future__ import annotations

import copy
import logging
import os
import pickle
import uuid
from typing import Dict, List

import numpy as np

from executor.fileio import atomic_write_json
from executor.pointcloud import Boxes3D, load_points

from ..common import runtime
from .bank import BankWriter, Frame, FrameFeatures, MiningParams, calibrate, collect_features, select

log = logging.getLogger(__name__)


def _boxes(instances: List[dict]) -> Boxes3D:
    return Boxes3D(np.asarray([i["bbox_3d"] for i in instances], dtype=np.float64).reshape(-1, 7),
                   np.asarray([i["bbox_label_3d"] for i in instances], dtype=np.int64), -np.ones(len(instances)))


def paste_step(bank_dir: str, names: List[str], per_class: int, counts: Dict[str, int]) -> dict:
    """SS3D's point filling (seed 000, step 2): mmdet3d's ``ObjectSample`` over the instance bank
    (annotated and pseudo instances, dbinfos format), beside the frame's own objects: up to
    ``per_class`` instances of each class the bank holds, placed where they collide with nothing
    known, so the background freed by the cut gets real objects to learn from."""
    present = {n: per_class for n in names if counts.get(n, 0) > 0}
    return dict(type="ObjectSample", db_sampler=dict(
        type="DataBaseSampler", info_path=os.path.join(bank_dir, "bank_dbinfos.pkl"), data_root=bank_dir, rate=1.0,
        prepare=dict(filter_by_min_points={n: 5 for n in present}), classes=list(names), sample_groups=present,
        points_loader=dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=4, use_dim=[0, 1, 2, 3])))


def round_config(cfg, ann_file: str, weights: str, work_dir: str, epochs: int, paste: dict = None):
    """The training config of one round: labels + bank, unreliable regions cut (and, with
    ``paste``, bank instances pasted in), fresh schedule."""
    rcfg = copy.deepcopy(cfg)
    ds = rcfg.train_dataloader.dataset
    ds.ann_file = ann_file
    steps = list(ds.pipeline)
    at = next(i for i, s in enumerate(steps) if s["type"] == "LoadAnnotations3D") + 1
    steps.insert(at, dict(type="YmirReliableBackground", margin=0.1))
    if paste is not None:
        steps.insert(at + 1, paste)
    ds.pipeline = steps
    rcfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=epochs, val_interval=epochs)
    lr = rcfg.optim_wrapper.optimizer.lr
    rcfg.param_scheduler = [dict(type="CosineAnnealingLR", eta_min=lr * 0.01, by_epoch=True, begin=0, end=epochs,
                                 T_max=epochs, convert_to_iter_based=True)]
    rcfg.default_hooks.checkpoint.interval = epochs
    rcfg.work_dir = work_dir
    rcfg.load_from = weights
    rcfg.resume = False
    rcfg.visualizer.name = f"ymir-ss3d-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return rcfg


def run_rounds(ctx, cfg, data: Dict, work_dir: str, runner, point_cloud_range) -> None:
    import torch
    from mmengine.config import Config

    from .config import inference_dataset
    from ..common.candidates import BrokenCandidates
    from .infer import ModelPredictor, scan_batches

    p = ctx.cfg.params
    rounds, epochs = p["ss3d_iterations"], p["ss3d_epochs"]
    names = list(ctx.class_names)
    out_dir = os.path.join(ctx.env.output.root_dir, "ss3d")
    os.makedirs(out_dir, exist_ok=True)
    with open(data["train"]["pkl"], "rb") as f:
        base = pickle.load(f)
    infos = {int(i["sample_idx"]): i for i in base["data_list"]}
    labelled = {idx: _boxes(i["instances"]) for idx, i in infos.items()}
    bank = {idx: Boxes3D() for idx in infos}
    params = MiningParams()
    for k in range(1, rounds + 1):
        model = getattr(runner.model, "module", runner.model).eval()
        model.cfg = Config(dict(test_dataloader=dict(dataset=inference_dataset(names, point_cloud_range))))
        frames = {idx: Frame(str(idx), i["lidar_points"]["lidar_path"], Boxes3D.concat([labelled[idx], bank[idx]]))
                  for idx, i in infos.items()}

        def batches():
            # the training scans were checked before training: none may be unreadable here
            every = BrokenCandidates(0.0, len(frames), "SS3D round")
            for batch in scan_batches([(idx, f.scan, None) for idx, f in frames.items()], p["samples_per_gpu"], 0,
                                      every):
                yield [(frames[idx], pts) for idx, _, _, pts in batch]

        feats: List[FrameFeatures] = []
        with torch.no_grad():
            samples = collect_features(batches(), ModelPredictor(model, p["samples_per_gpu"]), params, 1, k,
                                       feats.append)
        th = calibrate(samples, len(names), params)
        added = holes = 0
        cut: Dict[int, np.ndarray] = {}
        for feat in feats:
            r = select(feat, th, params)
            idx = int(feat.key)
            bank[idx] = Boxes3D.concat([bank[idx], r.pseudo])
            cut[idx] = r.uncertain_boxes.boxes
            added += len(r.pseudo)
            holes += len(r.uncertain_boxes)
        doc = copy.deepcopy(base)
        for info in doc["data_list"]:
            idx = int(info["sample_idx"])
            info["instances"] = info["instances"] + [{"bbox_3d": [float(v) for v in b], "bbox_label_3d": int(l)}
                                                     for b, l in zip(bank[idx].boxes, bank[idx].labels)]
            info["ss3d_holes"] = [[float(v) for v in b] for b in cut[idx]]
        pkl = os.path.join(out_dir, f"round{k}.pkl")
        with open(pkl + ".tmp", "wb") as f:
            pickle.dump(doc, f)
        os.replace(pkl + ".tmp", pkl)
        writer = BankWriter(os.path.join(out_dir, "bank"), names)
        for idx, info in infos.items():
            frame_id = os.path.splitext(os.path.basename(info["lidar_points"]["lidar_path"]))[0]
            writer.add(frame_id, load_points(info["lidar_points"]["lidar_path"]), labelled[idx], bank[idx])
        writer.close()
        paste = None
        if p["ss3d_paste"] > 0:
            counts = dict(writer.counts)
            paste = paste_step(os.path.join(out_dir, "bank"), names, p["ss3d_paste"], counts)
        report = {"round": k, "thresholds": th.table(names), "pseudo_added": added,
                  "bank_pseudo": int(sum(len(b) for b in bank.values())), "unreliable_regions": holes,
                  "frames": len(infos), "epochs": epochs, "pasted_per_class": p["ss3d_paste"]}
        atomic_write_json(os.path.join(out_dir, f"round{k}.json"), report)
        log.info("SS3D round %d/%d: %d pseudo labels added (bank %d), %d unreliable regions cut; training %d "
                 "epochs", k, rounds, added, report["bank_pseudo"], holes, epochs)
        weights = os.path.join(work_dir, f"ss3d-round{k}-start.pth")
        torch.save(runtime.plain_state_dict(model), weights)
        runtime.task_context()["progress_span"] = (k / (rounds + 1), (k + 1) / (rounds + 1))
        runner = runtime.build_runner(round_config(cfg, pkl, weights, os.path.join(work_dir, f"ss3d-round{k}"), epochs,
                                              paste))
        runner.train()
