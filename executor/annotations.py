"""Readers for YMIR's annotation exports: det-ark, det-voc, coco (det / seg) and seg-mask.

Formats are told apart by content (:func:`detect_annotation_format`), never by the
file extension or the ``export_format`` hyper-parameter, which users edit freely.

Boxes come back as :class:`~executor.records.DetObject` with exclusive ``x2/y2``:
ark and voc coordinates are inclusive (``xmax = x + w - 1``) so ``x2 = xmax + 1``;
coco boxes are ``[x, y, w, h]`` so ``x2 = x + w``.

Every problem raises a code-300002 :class:`~executor.errors.YmirError` whose one-line
message names the file, the field and (for text formats) the line.
"""
from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple
from xml.parsers import expat

import numpy as np

from .errors import YmirError, dataset_error
from .records import DetObject

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- helpers

def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise dataset_error("annotation file not found", file=path) from None
    except OSError as e:
        raise dataset_error(f"cannot read annotation file: {e.strerror or e}", file=path) from None


def _read_text(path: str) -> str:
    data = _read_bytes(path)
    try:
        return data.decode("utf-8-sig")  # tolerate a BOM from Windows editors
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise dataset_error("annotation file is not UTF-8 text", file=path, line=line) from None


def _norm(name: Any) -> str:
    return str(name).strip().lower()


def _class_lookup(class_names: Sequence[str]) -> Dict[str, int]:
    # First occurrence wins; class_names come from config.yaml, already unique in practice.
    lookup: Dict[str, int] = {}
    for i, n in enumerate(class_names):
        lookup.setdefault(_norm(n), i)
    return lookup


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_id(v: Any) -> bool:
    # coco ids are ints (YMIR) or strings (some tools); never bools or unhashable values
    return isinstance(v, (int, str)) and not isinstance(v, bool)


def _parse_float(text: Optional[str]) -> Optional[float]:
    if text is None:
        return None
    try:
        v = float(text.strip())
    except ValueError:
        return None
    return v if math.isfinite(v) else None


# --------------------------------------------------------------------------- detection

def detect_annotation_format(path: str) -> str:
    """'seg-mask' (PNG), 'voc' (xml), 'coco' (json) or 'ark' (anything else, an empty file too)."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_PNG_MAGIC))
            if head == _PNG_MAGIC:
                return "seg-mask"
            chunk = head
            while True:
                text = chunk.lstrip(b" \t\r\n\x0b\x0c")
                if text.startswith(b"\xef\xbb\xbf"):  # UTF-8 BOM
                    text = text[3:].lstrip(b" \t\r\n\x0b\x0c")
                if text:
                    break
                chunk = f.read(4096)
                if not chunk:
                    return "ark"
    except FileNotFoundError:
        raise dataset_error("annotation file not found", file=path) from None
    except OSError as e:
        raise dataset_error(f"cannot read annotation file: {e.strerror or e}", file=path) from None
    first = text[:1]
    if first == b"<":
        return "voc"
    if first == b"{":
        return "coco"
    return "ark"


# --------------------------------------------------------------------------- ark

_ARK_FIELDS = ("class_idx", "xmin", "ymin", "xmax", "ymax", "anno_quality", "rotate_angle")


def read_ark(path: str, class_names: Sequence[str]) -> List[DetObject]:
    """Objects of a det-ark ``.txt``: ``class_idx, xmin, ymin, xmax, ymax[, anno_quality, rotate_angle]``."""
    objects: List[DetObject] = []
    n_classes = len(class_names)
    for lineno, raw in enumerate(_read_text(path).splitlines(), start=1):
        if not raw.strip():
            continue
        parts = [p.strip() for p in raw.split(",")]
        if len(parts) not in (5, 7):
            raise dataset_error(
                f"expected 5 or 7 comma-separated fields "
                f"(class_idx, xmin, ymin, xmax, ymax[, anno_quality, rotate_angle]), got {len(parts)}: {raw[:120]!r}",
                file=path, line=lineno)
        values = []
        for name, text in zip(_ARK_FIELDS, parts):
            v = _parse_float(text)
            if v is None:
                raise dataset_error(f"not a finite number: {text[:40]!r}", file=path, line=lineno, field=name)
            values.append(v)
        cls = values[0]
        if cls != int(cls) or not 0 <= cls < n_classes:
            raise dataset_error(f"class index {parts[0]} out of range 0..{n_classes - 1} of class_names",
                                file=path, line=lineno, field="class_idx")
        xmin, ymin, xmax, ymax = values[1:5]
        _check_box(path, xmin, ymin, xmax, ymax, line=lineno)
        obj = DetObject(class_id=int(cls), x1=xmin, y1=ymin, x2=xmax + 1, y2=ymax + 1)
        if len(values) == 7:
            obj.quality, obj.rotate_angle = values[5], values[6]
        objects.append(obj)
    return objects


def _check_box(path: str, xmin: float, ymin: float, xmax: float, ymax: float, *,
               line: Optional[int] = None, prefix: str = "") -> None:
    for name, v in (("xmin", xmin), ("ymin", ymin), ("xmax", xmax), ("ymax", ymax)):
        if v < 0:
            raise dataset_error(f"negative coordinate {v:g}", file=path, line=line, field=prefix + name)
    if xmax < xmin:
        raise dataset_error(f"xmax {xmax:g} < xmin {xmin:g}", file=path, line=line, field=prefix + "xmax")
    if ymax < ymin:
        raise dataset_error(f"ymax {ymax:g} < ymin {ymin:g}", file=path, line=line, field=prefix + "ymax")


# --------------------------------------------------------------------------- voc

def _parse_xml_with_lines(path: str, data: bytes) -> Tuple[ET.Element, Dict[ET.Element, int]]:
    """ElementTree has no source lines; drive expat directly to keep one per element."""
    parser = expat.ParserCreate()
    builder = ET.TreeBuilder()
    lines: Dict[ET.Element, int] = {}

    def start(tag: str, attrs: Dict[str, str]) -> None:
        lines[builder.start(tag, attrs)] = parser.CurrentLineNumber

    parser.StartElementHandler = start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        root = builder.close()
    except expat.ExpatError as e:
        raise dataset_error(f"malformed xml: {expat.ErrorString(e.code)} (column {e.offset + 1})",
                            file=path, line=e.lineno, field="xml") from None
    return root, lines


def read_voc(path: str, class_names: Sequence[str]) -> Tuple[List[DetObject], Optional[int], Optional[int]]:
    """(objects, width, height) of a det-voc ``.xml``; width/height are None when <size> is absent."""
    data = _read_bytes(path)
    if not data.strip():
        return [], None, None  # an empty annotation file = an image without objects
    root, lines = _parse_xml_with_lines(path, data)
    lookup = _class_lookup(class_names)

    def err(msg: str, field: str, elem: Optional[ET.Element]) -> YmirError:
        return dataset_error(msg, file=path, field=field, line=lines.get(elem) if elem is not None else None)

    width = height = None
    size = root.find("size")
    if size is not None:
        width = _voc_dim(size, "width", err)
        height = _voc_dim(size, "height", err)

    objects: List[DetObject] = []
    for i, obj in enumerate(root.findall("object")):
        name_el = obj.find("name")
        if name_el is None or not (name_el.text or "").strip():
            raise err("object has no class <name>", f"object[{i}].name", obj if name_el is None else name_el)
        cls = lookup.get(_norm(name_el.text))
        if cls is None:
            raise err(f"class {name_el.text.strip()!r} is not in class_names", f"object[{i}].name", name_el)
        box = obj.find("bndbox")
        if box is None:
            raise err("object has no <bndbox>", f"object[{i}].bndbox", obj)
        coords = []
        for key in ("xmin", "ymin", "xmax", "ymax"):
            el = box.find(key)
            if el is None:
                raise err(f"<bndbox> has no <{key}>", f"object[{i}].bndbox.{key}", box)
            v = _parse_float(el.text)
            if v is None:
                raise err(f"not a finite number: {(el.text or '').strip()[:40]!r}", f"object[{i}].bndbox.{key}", el)
            coords.append(v)
        xmin, ymin, xmax, ymax = coords
        line = lines.get(box)
        _check_box(path, xmin, ymin, xmax, ymax, line=line, prefix=f"object[{i}].bndbox.")
        det = DetObject(class_id=cls, x1=xmin, y1=ymin, x2=xmax + 1, y2=ymax + 1)
        # Optional numeric extras that YMIR writes; absent -> defaults.
        for parent, key, attr in ((box, "rotate_angle", "rotate_angle"), (obj, "box_quality", "quality")):
            el = parent.find(key)
            if el is not None and (el.text or "").strip():
                v = _parse_float(el.text)
                if v is None:
                    field = f"object[{i}].bndbox.{key}" if parent is box else f"object[{i}].{key}"
                    raise err(f"not a finite number: {el.text.strip()[:40]!r}", field, el)
                setattr(det, attr, v)
        objects.append(det)
    return objects, width, height


def _voc_dim(size: ET.Element, key: str, err) -> Optional[int]:
    el = size.find(key)
    if el is None or not (el.text or "").strip():
        return None
    v = _parse_float(el.text)
    if v is None or v < 0 or v != int(v):
        raise err(f"not a non-negative integer: {el.text.strip()[:40]!r}", f"size.{key}", el)
    return int(v) or None  # 0 = unknown size


# --------------------------------------------------------------------------- coco

class _CocoBase:
    """The shared coco json: categories mapped by name, annotations grouped per image."""

    def __init__(self, json_path: str, class_names: Sequence[str]) -> None:
        self.path = json_path
        self.class_names = list(class_names)
        data = self._load()
        self._cat_to_class = self._categories(data)
        self._images: Dict[Any, Dict[str, Any]] = {}  # image id -> record
        self._image_index: Dict[Any, int] = {}  # image id -> position in images[]
        self._by_name: Dict[str, Any] = {}  # basename -> image id
        self._by_stem: Dict[str, Any] = {}  # stem -> image id, only when unique
        self._index_images(data)
        # image id -> [(k, class index, annotation dict)] in file order (later paints over earlier)
        self._anns: Dict[Any, List[Tuple[int, int, Dict[str, Any]]]] = {}
        self._index_annotations(data)

    def _err(self, msg: str, field: str) -> YmirError:
        return dataset_error(msg, file=self.path, field=field)

    def _load(self) -> Dict[str, Any]:
        text = _read_text(self.path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise dataset_error(f"malformed json: {e.msg} (column {e.colno})", file=self.path,
                                line=e.lineno, field="json") from None
        if not isinstance(data, dict):
            raise self._err(f"expected a json object at top level, got {type(data).__name__}", "json")
        for key in ("images", "categories", "annotations"):
            value = data.get(key, [])
            if value is None:
                value = []
            if not isinstance(value, list):
                raise self._err(f"expected a list, got {type(value).__name__}", key)
            data[key] = value
        return data

    def _categories(self, data: Dict[str, Any]) -> Dict[Any, int]:
        lookup = _class_lookup(self.class_names)
        mapping: Dict[Any, int] = {}
        for i, cat in enumerate(data["categories"]):
            if not isinstance(cat, dict):
                raise self._err(f"expected an object, got {type(cat).__name__}", f"categories[{i}]")
            name = cat.get("name")
            if not isinstance(name, str) or not name.strip():
                raise self._err("missing or empty category name", f"categories[{i}].name")
            cls = lookup.get(_norm(name))
            if cls is None:
                raise self._err(f"category {name.strip()!r} is not in class_names {self.class_names}",
                                f"categories[{i}].name")
            cid = cat.get("id")
            if not _is_id(cid):
                raise self._err(f"missing or invalid category id {cid!r}", f"categories[{i}].id")
            if cid in mapping and mapping[cid] != cls:
                raise self._err(f"category id {cid!r} is used for two different names", f"categories[{i}].id")
            mapping[cid] = cls
        return mapping

    def _index_images(self, data: Dict[str, Any]) -> None:
        stems: Dict[str, List[Any]] = {}
        for i, img in enumerate(data["images"]):
            if not isinstance(img, dict):
                raise self._err(f"expected an object, got {type(img).__name__}", f"images[{i}]")
            iid = img.get("id")
            if not _is_id(iid):
                raise self._err(f"missing or invalid image id {iid!r}", f"images[{i}].id")
            if iid in self._images:
                raise self._err(f"duplicate image id {iid!r}", f"images[{i}].id")
            fname = img.get("file_name")
            if not isinstance(fname, str) or not fname.strip():
                raise self._err("missing or empty file_name", f"images[{i}].file_name")
            base = os.path.basename(fname.strip())
            if base in self._by_name:
                raise self._err(f"duplicate file_name {base!r}", f"images[{i}].file_name")
            for key in ("width", "height"):
                v = img.get(key)
                if v is not None and not (_is_number(v) and v >= 0 and v == int(v)):
                    raise self._err(f"not a non-negative integer: {v!r}", f"images[{i}].{key}")
            self._images[iid] = img
            self._image_index[iid] = i
            self._by_name[base] = iid
            stems.setdefault(os.path.splitext(base)[0], []).append(iid)
        self._by_stem = {s: ids[0] for s, ids in stems.items() if len(ids) == 1}

    def _index_annotations(self, data: Dict[str, Any]) -> None:
        for k, ann in enumerate(data["annotations"]):
            if not isinstance(ann, dict):
                raise self._err(f"expected an object, got {type(ann).__name__}", f"annotations[{k}]")
            iid = ann.get("image_id")
            if not _is_id(iid) or iid not in self._images:
                raise self._err(f"image_id {iid!r} is not in images[]", f"annotations[{k}].image_id")
            cid = ann.get("category_id")
            if not _is_id(cid) or cid not in self._cat_to_class:
                raise self._err(f"category_id {cid!r} is not in categories[]", f"annotations[{k}].category_id")
            self._check_annotation(k, ann)
            self._anns.setdefault(iid, []).append((k, self._cat_to_class[cid], ann))

    def _check_annotation(self, k: int, ann: Dict[str, Any]) -> None:  # pragma: no cover - overridden
        pass

    def _image_id(self, image_path: str) -> Optional[Any]:
        base = os.path.basename(str(image_path).strip())
        iid = self._by_name.get(base)
        if iid is None:
            # asset ext may differ from the json's (e.g. 'unknown'); the hash stem is what identifies it
            iid = self._by_stem.get(os.path.splitext(base)[0])
        return iid

    def classes_of(self, image_path: str) -> List[int]:
        """The class ids annotated on an image (sorted, each once)."""
        iid = self._image_id(image_path)
        return sorted({cls for _, cls, _ in self._anns.get(iid, [])}) if iid is not None else []

    def image_size(self, image_path: str) -> Optional[Tuple[int, int]]:
        """(width, height) from ``images[]``, None when the image or its size is absent."""
        iid = self._image_id(image_path)
        if iid is None:
            return None
        img = self._images[iid]
        w, h = img.get("width"), img.get("height")
        if not w or not h:
            return None
        return int(w), int(h)


class CocoDetReader(_CocoBase):
    """Boxes from the shared ``coco-annotations.json`` (loaded and validated once)."""

    def _check_annotation(self, k: int, ann: Dict[str, Any]) -> None:
        bbox = ann.get("bbox")
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise self._err(f"bbox must be 4 finite numbers [x, y, w, h], got {str(bbox)[:80]}",
                            f"annotations[{k}].bbox")
        x, y, w, h = bbox
        if w <= 0 or h <= 0:
            raise self._err(f"bbox width and height must be > 0, got w={w:g} h={h:g}", f"annotations[{k}].bbox")
        if x < 0 or y < 0:
            raise self._err(f"bbox has a negative origin x={x:g} y={y:g}", f"annotations[{k}].bbox")

    def objects(self, image_path: str) -> List[DetObject]:
        """Boxes of the image whose basename matches ``images[].file_name``; [] when absent."""
        iid = self._image_id(image_path)
        if iid is None:
            return []
        out = []
        for _, cls, ann in self._anns.get(iid, []):
            x, y, w, h = (float(v) for v in ann["bbox"])
            out.append(DetObject(class_id=cls, x1=x, y1=y, x2=x + w, y2=y + h))
        return out


def _rle_string_counts(s: str) -> Optional[np.ndarray]:
    """Decode a compressed RLE string exactly as pycocotools' ``rleFrString`` does.

    pycocotools trusts the counts and writes past its buffer on a bad string, so
    the counts are checked here first (vectorised: YMIR jsons hold many thousands
    of RLEs). Returns the int64 counts, or None on a malformed string.
    """
    try:
        raw = np.frombuffer(s.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        return None
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    c = raw.astype(np.int64) - 48
    if c.min() < 0 or c.max() >= 64:
        return None
    ends = (c & 0x20) == 0  # a char without the continuation bit closes a value
    if not ends[-1]:
        return None
    end_idx = np.flatnonzero(ends)
    starts = np.concatenate(([0], end_idx[:-1] + 1))
    lengths = end_idx - starts + 1
    if lengths.max() > 7:  # 7 chars = 35 bits already exceed the uint32 counts
        return None
    k = np.arange(c.size) - np.repeat(starts, lengths)  # position inside its value
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    negative = (c[end_idx] & 0x10) != 0  # sign bit of the last 5-bit group
    x = x - (negative.astype(np.int64) << (5 * lengths))
    # counts[m] = x[m] + counts[m-2] for m > 2 (pycocotools' delta coding, quirk included)
    counts = x.copy()
    if counts.size > 3:
        counts[3::2] = counts[1] + np.cumsum(x[3::2])
    if counts.size > 4:
        counts[4::2] = counts[2] + np.cumsum(x[4::2])
    return counts


class CocoSegReader(_CocoBase):
    """Semantic masks from the shared coco json: class ids 0..N-1, 255 = unlabelled."""

    def _check_annotation(self, k: int, ann: Dict[str, Any]) -> None:
        field = f"annotations[{k}].segmentation"
        seg = ann.get("segmentation")
        kind = _seg_kind(seg)
        if kind == "invalid":
            raise self._err(f"unsupported segmentation {str(seg)[:80]}: expected RLE, polygon(s) or {{}}", field)
        if kind == "rle":
            size = seg.get("size")
            if not (isinstance(size, (list, tuple)) and len(size) == 2
                    and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
                raise self._err(f"RLE size must be [height, width] > 0, got {str(size)[:40]}", field)
            h, w = size
            counts = seg["counts"]
            if isinstance(counts, str):
                decoded = _rle_string_counts(counts)
                if decoded is None:
                    raise self._err("malformed compressed RLE counts string", field)
                negative, total = bool(decoded.size and decoded.min() < 0), int(decoded.sum())
            else:
                if not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
                    raise self._err("uncompressed RLE counts must be integers", field)
                negative, total = any(c < 0 for c in counts), sum(counts)
            if negative or total != h * w:
                raise self._err(f"RLE counts sum to {total} but size {h}x{w} has {h * w} pixels", field)
            img = self._images[ann["image_id"]]
            ih, iw = img.get("height"), img.get("width")
            if ih and iw and (int(ih), int(iw)) != (h, w):
                raise self._err(f"RLE size {h}x{w} disagrees with image size {int(ih)}x{int(iw)} (HxW)", field)
        elif kind == "polygons":
            for j, poly in enumerate(_as_polygons(seg)):
                if len(poly) < 6 or len(poly) % 2 or not all(_is_number(v) for v in poly):
                    raise self._err(f"polygon {j} must be an even list of >= 6 finite numbers", field)

    def has_annotations(self, image_path: str) -> bool:
        """True when the image has at least one annotation that paints pixels."""
        iid = self._image_id(image_path)
        return iid is not None and any(_seg_kind(a.get("segmentation")) != "empty"
                                       for _, _, a in self._anns.get(iid, []))

    def classes_present(self) -> Set[int]:
        """Class indices that paint pixels somewhere in the dataset (box-only annotations excluded)."""
        return {cls for anns in self._anns.values() for _, cls, a in anns
                if _seg_kind(a.get("segmentation")) != "empty"}

    def mask(self, image_path: str, height: Optional[int] = None, width: Optional[int] = None) -> np.ndarray:
        """(H, W) uint8 mask; ``height``/``width`` (from the decoded image) win over the json's size."""

        iid = self._image_id(image_path)
        anns = self._anns.get(iid, []) if iid is not None else []
        h, w = self._mask_size(iid, anns, image_path, height, width)
        out = np.full((h, w), 255, dtype=np.uint8)
        for k, cls, ann in anns:
            seg = ann.get("segmentation")
            kind = _seg_kind(seg)
            if kind == "empty":
                continue  # box-only annotation
            out[self._decode(k, seg, kind, h, w, image_path)] = cls
        return out

    def instances(self, image_path: str, height: int, width: int
                  ) -> List[Tuple[int, Optional[np.ndarray], bool, Optional[List[float]]]]:
        """Per annotation of the image, in file order: (class index, its HxW bool mask or None for a
        box-only annotation, iscrowd, its [x, y, w, h] bbox when it has a valid one)."""

        iid = self._image_id(image_path)
        anns = self._anns.get(iid, []) if iid is not None else []
        h, w = self._mask_size(iid, anns, image_path, height, width)
        out: List[Tuple[int, Optional[np.ndarray], bool, Optional[List[float]]]] = []
        for k, cls, ann in anns:
            seg = ann.get("segmentation")
            crowd = bool(ann.get("iscrowd", 0))
            box = ann.get("bbox")
            box = [float(v) for v in box] if isinstance(box, (list, tuple)) and len(box) == 4 \
                and all(_is_number(v) for v in box) else None
            kind = _seg_kind(seg)
            if kind == "empty":
                out.append((cls, None, crowd, box))
                continue
            out.append((cls, self._decode(k, seg, kind, h, w, image_path), crowd, box))
        return out

    def _decode(self, k: int, seg: Any, kind: str, h: int, w: int, image_path: str) -> np.ndarray:
        """The HxW bool mask of annotation ``k`` (RLE with string or list counts, or polygons)."""
        from pycocotools import mask as mask_utils

        field = f"annotations[{k}].segmentation"
        if kind == "rle":
            rh, rw = seg["size"]
            if (rh, rw) != (h, w):
                raise self._err(f"RLE size {rh}x{rw} disagrees with image size {h}x{w} (HxW) "
                                f"of {os.path.basename(image_path)}", field)
            if isinstance(seg["counts"], str):
                rle = {"size": [h, w], "counts": seg["counts"].encode("ascii")}
            else:
                rle = mask_utils.frPyObjects({"size": [h, w], "counts": list(seg["counts"])}, h, w)
        else:
            polys = [[float(v) for v in p] for p in _as_polygons(seg)]
            rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
        m = mask_utils.decode(rle)
        if m.shape[:2] != (h, w):  # pragma: no cover - guarded by the size checks above
            raise self._err(f"decoded mask shape {m.shape} != {h}x{w}", field)
        return m.astype(bool)

    def _mask_size(self, iid: Any, anns: list, image_path: str,
                   height: Optional[int], width: Optional[int]) -> Tuple[int, int]:
        json_size = None
        if iid is not None:
            img = self._images[iid]
            if img.get("height") and img.get("width"):
                json_size = (int(img["height"]), int(img["width"]))
        if height and width:
            if json_size is not None and json_size != (int(height), int(width)):
                i = self._image_index[iid]
                raise self._err(f"json size {json_size[0]}x{json_size[1]} disagrees with the decoded "
                                f"image {int(height)}x{int(width)} (HxW) of {os.path.basename(image_path)}",
                                f"images[{i}].height")
            return int(height), int(width)
        if json_size is not None:
            return json_size
        for _, _, ann in anns:
            seg = ann.get("segmentation")
            if _seg_kind(seg) == "rle":
                return int(seg["size"][0]), int(seg["size"][1])
        field = f"images[{self._image_index[iid]}].height" if iid is not None else "images"
        raise self._err(f"no size known for {os.path.basename(image_path)}: pass height and width", field)


def _seg_kind(seg: Any) -> str:
    """'empty' (box only), 'rle', 'polygons' or 'invalid'."""
    if seg is None or (isinstance(seg, (dict, list)) and len(seg) == 0):
        return "empty"
    if isinstance(seg, dict):
        counts = seg.get("counts")
        if isinstance(counts, (str, list)) and "size" in seg:
            return "rle"
        return "invalid"
    if isinstance(seg, list):
        if all(isinstance(p, list) for p in seg):
            return "polygons"
        if all(_is_number(v) for v in seg):
            return "polygons"  # one flat polygon [x1, y1, x2, y2, ...]
    return "invalid"


def _as_polygons(seg: list) -> List[list]:
    return seg if isinstance(seg[0], list) else [seg]


# --------------------------------------------------------------------------- seg-mask

class SegMaskReader:
    """Colour PNG masks (YMIR 2.0.x seg-mask export) with ``labelmap.txt`` lines ``name:R,G,B::``."""

    def __init__(self, labelmap_path: str, class_names: Sequence[str]) -> None:
        self.path = labelmap_path
        self.class_names = list(class_names)
        lookup = _class_lookup(class_names)
        self.labelmap: Dict[str, Tuple[int, int, int]] = {}  # every labelmap entry, normalised name -> colour
        self.colors: Dict[int, Tuple[int, int, int]] = {}  # class index -> colour (classes in class_names)
        owner: Dict[Tuple[int, int, int], str] = {}
        for lineno, raw in enumerate(_read_text(labelmap_path).splitlines(), start=1):
            text = raw.strip()
            if not text or text.startswith("#"):  # CVAT-style header '# label:color_rgb:parts:actions'
                continue
            parts = text.split(":")
            if len(parts) < 2 or not parts[0].strip():
                raise dataset_error(f"expected 'name:R,G,B::', got {text[:80]!r}", file=labelmap_path,
                                    line=lineno, field="name")
            name = _norm(parts[0])
            rgb = [p.strip() for p in parts[1].split(",")]
            if len(rgb) != 3 or not all(p.isascii() and p.isdigit() and int(p) <= 255 for p in rgb):
                raise dataset_error(f"colour must be R,G,B with 0..255 integers, got {parts[1][:40]!r}",
                                    file=labelmap_path, line=lineno, field="color")
            color = (int(rgb[0]), int(rgb[1]), int(rgb[2]))
            if name in self.labelmap:
                raise dataset_error(f"duplicate label {name!r}", file=labelmap_path, line=lineno, field="name")
            self.labelmap[name] = color
            cls = lookup.get(name)
            if cls is None:
                continue  # class_names may be a subset of the labelmap
            if color in owner:
                raise dataset_error(f"colour {color} is used by both {owner[color]!r} and {name!r}",
                                    file=labelmap_path, line=lineno, field="color")
            owner[color] = name
            self.colors[cls] = color

    def mask(self, png_path: str) -> np.ndarray:
        """(H, W) uint8: a class colour -> its index in class_names, any other colour -> 255."""
        rgb = _load_mask_rgb(png_path)
        key = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
        out = np.full(key.shape, 255, dtype=np.uint8)
        for cls, (r, g, b) in self.colors.items():
            out[key == ((r << 16) | (g << 8) | b)] = cls
        return out


def _load_mask_rgb(path: str) -> np.ndarray:
    from PIL import Image

    data_head = _read_bytes_head(path, len(_PNG_MAGIC))
    if data_head != _PNG_MAGIC:
        raise dataset_error("mask is not a PNG file", file=path, field="mask")
    try:
        with Image.open(path, formats=["PNG"]) as img:
            img.load()  # full decode so a truncated mask fails here
            if img.mode != "RGB":
                img = img.convert("RGB")  # palette / gray / RGBA masks carry their colours in RGB
            return np.asarray(img, dtype=np.uint8)
    except MemoryError:
        raise
    except Exception as e:
        raise dataset_error(f"cannot decode mask PNG: {type(e).__name__}: {str(e).strip()}",
                            file=path, field="mask") from None


def _read_bytes_head(path: str, n: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except FileNotFoundError:
        raise dataset_error("mask file not found", file=path, field="mask") from None
    except OSError as e:
        raise dataset_error(f"cannot read mask file: {e.strerror or e}", file=path, field="mask") from None
