"""What the 3D image registers in mmdet3d's registries: a LiDAR-only dataset over our info pkls
(any class names, frames without boxes kept as negatives) and a CPU metric (see :mod:`.metrics`)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import logging
import warnings

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # numpy 1.26 warns when np.long is merely looked up
    if not hasattr(np, "long"):  # mmdet3d 1.4's DataBaseSampler still uses np.long (gone in numpy 1.24-1.26)
        np.long = np.int64  # type: ignore[attr-defined]

import torch  # noqa: E402
from mmcv.transforms import BaseTransform  # noqa: E402
from mmengine.evaluator import BaseMetric  # noqa: E402
from mmdet3d.datasets import Det3DDataset  # noqa: E402
from mmdet3d.datasets.transforms import LoadPointsFromFile  # noqa: E402
from mmdet3d.registry import DATASETS, METRICS, TRANSFORMS  # noqa: E402
from mmdet3d.structures import LiDARInstance3DBoxes  # noqa: E402

from executor.pointcloud import POINT_DIM, Boxes3D, load_points  # noqa: E402

from ..common import training_pictures  # noqa: E402
from .data import load_gt  # noqa: E402
from .geometry import points_in_boxes  # noqa: E402
from .metrics import det3d_metrics, det3d_pictures  # noqa: E402

log = logging.getLogger(__name__)


@DATASETS.register_module()
class YmirLidarDataset(Det3DDataset):
    """Frames of an info pkl written by :func:`ymir_tasks.det3d.data.build_infos`."""

    METAINFO = {"classes": ()}

    def __init__(self, *args, metainfo: Optional[dict] = None, **kwargs) -> None:
        # Det3DDataset maps labels through METAINFO's classes; ours are the run's class names.
        self.METAINFO = {"classes": tuple((metainfo or {}).get("classes", ()))}
        kwargs.setdefault("data_prefix", dict(pts=""))
        kwargs.setdefault("box_type_3d", "LiDAR")
        kwargs.setdefault("modality", dict(use_lidar=True, use_camera=False))
        super().__init__(*args, metainfo=metainfo, **kwargs)

    def parse_ann_info(self, info: dict) -> dict:
        ann = super().parse_ann_info(info)
        if ann is None:
            ann = dict(gt_bboxes_3d=np.zeros((0, 7), dtype=np.float32), gt_labels_3d=np.zeros(0, dtype=np.int64))
        ann["gt_bboxes_3d"] = LiDARInstance3DBoxes(np.asarray(ann["gt_bboxes_3d"], dtype=np.float32).reshape(-1, 7),
                                                   box_dim=7, origin=(0.5, 0.5, 0))
        return ann


@TRANSFORMS.register_module()
class YmirLoadPoints(LoadPointsFromFile):
    """mmdet3d's point loading with the contract's scan reader: a cut, empty or NaN scan is a
    YMIR error (300003) naming the file, in a loader worker as in inference."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("coord_type", "LIDAR")
        kwargs.setdefault("load_dim", POINT_DIM)
        kwargs.setdefault("use_dim", POINT_DIM)
        super().__init__(**kwargs)

    def _load_points(self, pts_filename: str) -> np.ndarray:
        return load_points(pts_filename).reshape(-1)


@TRANSFORMS.register_module()
class YmirReliableBackground(BaseTransform):
    """SS3D's reliable background: the points inside a frame's unreliable regions (``ss3d_holes``
    of its info: boxes the detector suspects but that are neither labelled nor in the bank),
    enlarged by ``margin`` metres, are removed, so possibly unlabelled objects are not learnt as
    background. Put it right after the loading steps, before any augmentation."""

    def __init__(self, margin: float = 0.1) -> None:
        self.margin = margin

    def transform(self, results: dict) -> dict:
        holes = np.asarray(results.get("ss3d_holes") or [], dtype=np.float64).reshape(-1, 7)
        if len(holes):
            grown = holes.copy()
            grown[:, 3:6] += 2 * self.margin
            grown[:, 2] -= self.margin
            pts = results["points"]
            inside = points_in_boxes(pts.tensor[:, :3].numpy(), grown).any(1)
            results["points"] = pts[torch.from_numpy(~inside)]
        return results


@METRICS.register_module()
class YmirDet3DMetric(BaseMetric):
    default_prefix: Optional[str] = None

    def __init__(self, ann_file: str, class_names: Sequence[str], iou_thresholds: Sequence[float],
                 conf_threshold: float = 0.3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ann_file = ann_file
        self.class_names = list(class_names)
        self.iou_thresholds = list(iou_thresholds)
        self.conf_threshold = conf_threshold

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            p = s["pred_instances_3d"]
            self.results.append((int(s["sample_idx"]), p["bboxes_3d"].tensor[:, :7].cpu().numpy().astype(np.float64),
                                 p["scores_3d"].cpu().numpy(), p["labels_3d"].cpu().numpy()))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        gt = load_gt(self.ann_file)
        gts: List[Boxes3D] = []
        preds: List[Boxes3D] = []
        for idx, b, s, l in sorted(results, key=lambda r: r[0]):
            gts.append(gt.get(idx, Boxes3D()))
            preds.append(Boxes3D(b, l.astype(np.int64), s.astype(np.float64)))
        try:
            training_pictures.offer(det3d_pictures(gts, preds, self.class_names))
        except Exception as err:  # noqa: BLE001 - the figures stand without their pictures
            log.warning("evaluation pictures not drawn: %s: %s", type(err).__name__, err)
        return det3d_metrics(gts, preds, self.class_names, self.iou_thresholds, self.conf_threshold)
