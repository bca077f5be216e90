"""executor.annotations: ark, voc, coco det/seg and seg-mask readers."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from executor.annotations import (CocoDetReader, CocoSegReader, SegMaskReader, detect_annotation_format,
                                  read_ark, read_voc)
from executor.errors import ErrorCode, YmirError
from executor.records import DetObject

CLASSES = ["dog", "cat", "person"]


def _check(exc_info, *needles: str) -> None:
    err = exc_info.value
    assert isinstance(err, YmirError)
    assert err.code == ErrorCode.DATASET
    text = str(err)
    assert "\n" not in text
    for n in needles:
        assert n in text, (n, text)


def _boxes(objs):
    return [(o.class_id, o.x1, o.y1, o.x2, o.y2) for o in objs]


def _write(tmp_path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def _rle(binary: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(binary.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


def _uncompressed_rle(binary: np.ndarray) -> dict:
    # column-major runs starting with zeros, as COCO's iscrowd annotations store them
    flat = binary.astype(np.uint8).flatten(order="F")
    counts, cur, run = [], 0, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    return {"size": list(binary.shape), "counts": counts}


# =========================================================================== format detection

def test_detect_annotation_format_by_content(tmp_path):
    png = tmp_path / "m.txt"
    Image.new("RGB", (2, 2)).save(str(png), format="PNG")
    assert detect_annotation_format(str(png)) == "seg-mask"
    assert detect_annotation_format(_write(tmp_path, "a.txt", "\n  <annotation/>")) == "voc"
    assert detect_annotation_format(_write(tmp_path, "b.xml", '\ufeff {"images": []}')) == "coco"
    assert detect_annotation_format(_write(tmp_path, "c.json", "0, 1, 2, 3, 4\n")) == "ark"
    assert detect_annotation_format(_write(tmp_path, "d.xml", "")) == "ark"
    assert detect_annotation_format(_write(tmp_path, "e.xml", " " * 10000 + "\n<a/>")) == "voc"


def test_detect_missing_file(tmp_path):
    with pytest.raises(YmirError) as e:
        detect_annotation_format(str(tmp_path / "nope.txt"))
    _check(e, "nope.txt", "not found")


# =========================================================================== ark

def test_ark_5_and_7_fields_spaces_blank_lines(tmp_path):
    path = _write(tmp_path, "a.txt",
                  "0, 242, 61, 424, 249, -1.0, 0.0\n"
                  "\n"
                  "1,122,7,372,375\n"
                  "   \n"
                  "2 ,  12.0 , 0 , 12.5 , 3.0 , 0.75 , 1.5\r\n")
    objs = read_ark(path, CLASSES)
    assert _boxes(objs) == [(0, 242, 61, 425, 250), (1, 122, 7, 373, 376), (2, 12, 0, 13.5, 4)]
    assert [(o.quality, o.rotate_angle) for o in objs] == [(-1.0, 0.0), (-1.0, 0.0), (0.75, 1.5)]
    assert (objs[0].w, objs[0].h) == (183, 189)  # inclusive -> exclusive: w = xmax - xmin + 1


def test_ark_empty_file_means_no_objects(tmp_path):
    assert read_ark(_write(tmp_path, "e.txt", ""), CLASSES) == []
    assert read_ark(_write(tmp_path, "f.txt", "\n\n"), CLASSES) == []


def test_ark_single_pixel_box(tmp_path):
    (o,) = read_ark(_write(tmp_path, "p.txt", "1, 5, 6, 5, 6\n"), CLASSES)
    assert (o.x1, o.y1, o.x2, o.y2, o.w, o.h) == (5, 6, 6, 7, 1, 1)


@pytest.mark.parametrize("text,line,needle", [
    ("0, 1, 2, 3, 4\n0, 1, 2, 3, 4, 5\n", 2, "got 6"),                       # wrong field count
    ("0 1 2 3 4\n", 1, "got 1"),                                             # whitespace separated
    ("0, 1, 2, 3, 4, -1.0\n", 1, "got 6"),
])
def test_ark_wrong_field_count(tmp_path, text, line, needle):
    path = _write(tmp_path, "bad_count.txt", text)
    with pytest.raises(YmirError) as e:
        read_ark(path, CLASSES)
    _check(e, f"bad_count.txt:{line}", needle)


@pytest.mark.parametrize("text,line,field", [
    ("0, 1, 2, 3, 4\n\n0, 1, x2, 3, 4\n", 3, "ymin"),          # non-numeric
    ("3, 1, 2, 3, 4\n", 1, "class_idx"),                       # class out of range
    ("-1, 1, 2, 3, 4\n", 1, "class_idx"),                      # negative class
    ("1.5, 1, 2, 3, 4\n", 1, "class_idx"),                     # non-integral class
    ("0, 10, 2, 9, 4\n", 1, "xmax"),                           # xmax < xmin
    ("0, 1, 5, 3, 4\n", 1, "ymax"),                            # ymax < ymin
    ("0, -1, 2, 3, 4\n", 1, "xmin"),                           # negative coordinate
    ("0, 1, 2, 3, 4, bad, 0.0\n", 1, "anno_quality"),
    ("0, 1, 2, 3, nan\n", 1, "ymax"),
])
def test_ark_bad_values(tmp_path, text, line, field):
    path = _write(tmp_path, "bad_value.txt", text)
    with pytest.raises(YmirError) as e:
        read_ark(path, CLASSES)
    _check(e, f"bad_value.txt:{line}", f"field '{field}'")


def test_ark_not_utf8(tmp_path):
    p = tmp_path / "bin.txt"
    p.write_bytes(b"0, 1, 2, 3, 4\n\xff\xfe\x00\n")
    with pytest.raises(YmirError) as e:
        read_ark(str(p), CLASSES)
    _check(e, "bin.txt:2", "UTF-8")


def test_ark_missing_file(tmp_path):
    with pytest.raises(YmirError) as e:
        read_ark(str(tmp_path / "missing.txt"), CLASSES)
    _check(e, "missing.txt", "not found")


# =========================================================================== voc

VOC = """<?xml version="1.0" encoding="utf-8"?>
<annotation>
  <folder>folder</folder>
  <filename>/in/assets/ab/1234ab.jpg</filename>
  <source><database>Unknown</database></source>
  <size><width>640</width><height>480</height><depth>3</depth></size>
  <segmented>0</segmented>
  <cks><weather>sunny</weather></cks>
  <image_quality>0.8</image_quality>
  <object>
    <name> Cat </name>
    <pose>unknown</pose>
    <truncated>unknown</truncated>
    <occluded>0</occluded>
    <bndbox><xmin>10</xmin><ymin>20.5</ymin><xmax>110.0</xmax><ymax>220</ymax><rotate_angle>0.25</rotate_angle></bndbox>
    <difficult>0</difficult>
    <tags><color>red</color></tags>
    <box_quality>0.9</box_quality>
    <cm>0</cm>
    <confidence>1.0</confidence>
  </object>
  <object>
    <name>person</name>
    <truncated>unknown</truncated>
    <bndbox><xmin>0</xmin><ymin>0</ymin><xmax>0</xmax><ymax>9</ymax></bndbox>
    <part><name>head</name><bndbox><xmin>1</xmin></bndbox></part>
  </object>
</annotation>
"""


def test_voc_full_ymir_export(tmp_path):
    objs, w, h = read_voc(_write(tmp_path, "a.xml", VOC), CLASSES)
    assert (w, h) == (640, 480)
    assert _boxes(objs) == [(1, 10, 20.5, 111, 221), (2, 0, 0, 1, 10)]
    assert (objs[0].rotate_angle, objs[0].quality) == (0.25, 0.9)
    assert (objs[1].rotate_angle, objs[1].quality) == (0.0, -1.0)


def test_voc_without_size_and_objects(tmp_path):
    objs, w, h = read_voc(_write(tmp_path, "b.xml", "<annotation><filename>x</filename></annotation>"), CLASSES)
    assert (objs, w, h) == ([], None, None)
    assert read_voc(_write(tmp_path, "c.xml", ""), CLASSES) == ([], None, None)


def test_voc_zero_size_means_unknown(tmp_path):
    text = "<annotation><size><width>0</width><height></height></size></annotation>"
    assert read_voc(_write(tmp_path, "z.xml", text), CLASSES) == ([], None, None)


def _voc_obj(name="dog", box="<xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax>"):
    return f"  <object>\n    <name>{name}</name>\n    <bndbox>{box}</bndbox>\n  </object>\n"


@pytest.mark.parametrize("body,field,line", [
    (_voc_obj() + _voc_obj("horse"), "object[1].name", 7),
    (_voc_obj(box="<xmin>1</xmin><ymin>2</ymin><xmax>3</xmax>"), "object[0].bndbox.ymax", 4),
    (_voc_obj(box="<xmin>1</xmin><ymin>2</ymin><xmax>abc</xmax><ymax>4</ymax>"), "object[0].bndbox.xmax", 4),
    (_voc_obj(box="<xmin>5</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax>"), "object[0].bndbox.xmax", 4),
    (_voc_obj(box="<xmin>-2</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax>"), "object[0].bndbox.xmin", 4),
    ("  <object>\n    <name>dog</name>\n  </object>\n", "object[0].bndbox", 2),
    ("  <object>\n    <bndbox/>\n  </object>\n", "object[0].name", 2),
    ("  <size><width>wide</width></size>\n", "size.width", 2),
])
def test_voc_bad_objects(tmp_path, body, field, line):
    path = _write(tmp_path, "bad.xml", "<annotation>\n" + body + "</annotation>\n")
    with pytest.raises(YmirError) as e:
        read_voc(path, CLASSES)
    _check(e, f"bad.xml:{line}", f"field '{field}'")


def test_voc_malformed_xml(tmp_path):
    path = _write(tmp_path, "broken.xml", "<annotation>\n  <object>\n    <name>dog</nam>\n</annotation>\n")
    with pytest.raises(YmirError) as e:
        read_voc(path, CLASSES)
    _check(e, "broken.xml:3", "malformed xml", "field 'xml'")


# =========================================================================== coco (shared json)

def _coco(tmp_path, images, annotations, categories=None, name="coco-annotations.json") -> str:
    if categories is None:
        # only present classes, arbitrary ids, not in class order
        categories = [{"id": 7, "name": "person", "supercategory": "object"},
                      {"id": 3, "name": "Dog", "supercategory": "object"}]
    data = {"images": images, "categories": categories, "annotations": annotations,
            "info": {"description": "x"}, "licenses": []}
    return _write(tmp_path, name, json.dumps(data))


IMAGES = [
    {"id": 1, "file_name": "aa11.jpg", "width": 8, "height": 6, "license": 1},
    {"id": 2, "file_name": "bb22.png", "width": 8, "height": 6, "license": 1},
]


def test_coco_det_maps_categories_by_name(tmp_path):
    anns = [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4], "iscrowd": 0, "segmentation": {}},
        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [0.5, 0, 7.5, 6], "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 3, "bbox": [2, 2, 1, 1], "iscrowd": 0},
    ]
    reader = CocoDetReader(_coco(tmp_path, IMAGES, anns), CLASSES)
    assert _boxes(reader.objects("/in/assets/11/aa11.jpg")) == [(2, 1, 2, 4, 6), (0, 0.5, 0, 8, 6)]
    assert _boxes(reader.objects("bb22.png")) == [(0, 2, 2, 3, 3)]
    assert reader.objects("/in/assets/cc/cc33.jpg") == []
    assert reader.image_size("/x/aa11.jpg") == (8, 6)
    assert reader.image_size("/x/zz.jpg") is None
    # the asset's ext may differ (YMIR writes 'unknown'); the hash stem still identifies it
    assert _boxes(reader.objects("/in/assets/22/bb22.unknown")) == [(0, 2, 2, 3, 3)]
    assert isinstance(reader.objects("aa11.jpg")[0], DetObject)


def test_coco_det_image_without_size(tmp_path):
    reader = CocoDetReader(_coco(tmp_path, [{"id": 5, "file_name": "x.jpg"}], []), CLASSES)
    assert reader.image_size("x.jpg") is None
    assert reader.objects("x.jpg") == []


@pytest.mark.parametrize("bbox", [[1, 2, 3], [1, 2, 3, "4"], "1,2,3,4", [1, 2, 0, 4], [1, 2, 3, -1], None,
                                  [1, 2, float("nan"), 3]])
def test_coco_det_bad_bbox(tmp_path, bbox):
    anns = [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 1, 1, 1]},
            {"id": 2, "image_id": 2, "category_id": 3, "bbox": bbox}]
    path = _coco(tmp_path, IMAGES, anns)
    with pytest.raises(YmirError) as e:
        CocoDetReader(path, CLASSES)
    _check(e, "coco-annotations.json", "field 'annotations[1].bbox'")


def test_coco_unknown_category_name(tmp_path):
    cats = [{"id": 0, "name": "dog"}, {"id": 1, "name": "cat"}, {"id": 2, "name": "horse"}]
    with pytest.raises(YmirError) as e:
        CocoDetReader(_coco(tmp_path, IMAGES, [], cats), CLASSES)
    _check(e, "coco-annotations.json", "field 'categories[2].name'", "horse")


@pytest.mark.parametrize("ann,field", [
    ({"id": 1, "image_id": 99, "category_id": 7, "bbox": [1, 1, 1, 1]}, "annotations[0].image_id"),
    ({"id": 1, "image_id": 1, "category_id": 0, "bbox": [1, 1, 1, 1]}, "annotations[0].category_id"),
    ({"id": 1, "image_id": [1], "category_id": 7, "bbox": [1, 1, 1, 1]}, "annotations[0].image_id"),
])
def test_coco_dangling_references(tmp_path, ann, field):
    with pytest.raises(YmirError) as e:
        CocoDetReader(_coco(tmp_path, IMAGES, [ann]), CLASSES)
    _check(e, "coco-annotations.json", f"field '{field}'")


def test_coco_duplicate_file_name(tmp_path):
    images = IMAGES + [{"id": 3, "file_name": "sub/aa11.jpg", "width": 8, "height": 6}]
    with pytest.raises(YmirError) as e:
        CocoDetReader(_coco(tmp_path, images, []), CLASSES)
    _check(e, "coco-annotations.json", "field 'images[2].file_name'")


def test_coco_malformed_json(tmp_path):
    path = _write(tmp_path, "coco-annotations.json", '{\n  "images": [\n    {"id": 1,,}\n  ]\n}\n')
    with pytest.raises(YmirError) as e:
        CocoDetReader(path, CLASSES)
    _check(e, "coco-annotations.json:3", "malformed json")


def test_coco_top_level_not_object(tmp_path):
    with pytest.raises(YmirError) as e:
        CocoSegReader(_write(tmp_path, "list.json", "[1, 2]"), CLASSES)
    _check(e, "list.json", "field 'json'")


def test_coco_annotations_not_a_list(tmp_path):
    with pytest.raises(YmirError) as e:
        CocoSegReader(_write(tmp_path, "c.json", json.dumps({"images": [], "annotations": {}})), CLASSES)
    _check(e, "c.json", "field 'annotations'")


# --------------------------------------------------------------------------- coco seg

def test_coco_seg_all_segmentation_kinds(tmp_path):
    h, w = 6, 8
    a = np.zeros((h, w), np.uint8)
    a[0:3, 0:4] = 1                       # compressed RLE, dog
    b = np.zeros((h, w), np.uint8)
    b[2:6, 3:5] = 1                       # uncompressed RLE, person, paints over a at [2, 3]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 4, 3], "segmentation": _rle(a)},
        {"id": 2, "image_id": 1, "category_id": 7, "bbox": [3, 2, 2, 4], "segmentation": _uncompressed_rle(b)},
        {"id": 3, "image_id": 1, "category_id": 3, "bbox": [6, 0, 2, 2], "segmentation": {}},  # box only
        # single polygon (rectangle x 5..8, y 4..6) and multiple polygons on image 2
        {"id": 4, "image_id": 1, "category_id": 3, "bbox": [5, 4, 3, 2],
         "segmentation": [[5, 4, 8, 4, 8, 6, 5, 6]]},
        {"id": 5, "image_id": 2, "category_id": 7, "bbox": [0, 0, 8, 6],
         "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2], [6.0, 3.0, 8.0, 3.0, 8.0, 6.0, 6.0, 6.0]]},
    ]
    reader = CocoSegReader(_coco(tmp_path, IMAGES, anns), CLASSES)

    exp1 = np.full((h, w), 255, np.uint8)
    exp1[0:3, 0:4] = 0
    exp1[2:6, 3:5] = 2
    exp1[4:6, 5:8] = 0
    got1 = reader.mask("/in/assets/11/aa11.jpg")
    assert got1.dtype == np.uint8 and got1.shape == (h, w)
    assert np.array_equal(got1, exp1)
    assert np.array_equal(reader.mask("aa11.jpg", height=6, width=8), exp1)

    exp2 = np.full((h, w), 255, np.uint8)
    exp2[0:2, 0:2] = 2
    exp2[3:6, 6:8] = 2
    assert np.array_equal(reader.mask("bb22.png"), exp2)

    assert reader.has_annotations("aa11.jpg") and reader.has_annotations("bb22.png")
    assert not reader.has_annotations("cc33.jpg")
    assert reader.classes_present() == {0, 2}


def test_coco_seg_flat_polygon_and_box_only_image(tmp_path):
    images = [{"id": 1, "file_name": "p.jpg", "width": 4, "height": 3},
              {"id": 2, "file_name": "q.jpg", "width": 4, "height": 3}]
    anns = [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 0, 2, 3],
             "segmentation": [1, 0, 3, 0, 3, 3, 1, 3]},
            {"id": 2, "image_id": 2, "category_id": 3, "bbox": [0, 0, 1, 1], "segmentation": []}]
    reader = CocoSegReader(_coco(tmp_path, images, anns), CLASSES)
    exp = np.full((3, 4), 255, np.uint8)
    exp[:, 1:3] = 2
    assert np.array_equal(reader.mask("p.jpg"), exp)
    assert np.array_equal(reader.mask("q.jpg"), np.full((3, 4), 255, np.uint8))
    assert not reader.has_annotations("q.jpg")
    assert reader.classes_present() == {2}


def test_coco_seg_size_from_rle_or_arguments(tmp_path):
    a = np.zeros((3, 5), np.uint8)
    a[1, 1:4] = 1
    images = [{"id": 1, "file_name": "n.jpg"}]  # no width/height in the json
    anns = [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 1, 3, 1], "segmentation": _rle(a)}]
    reader = CocoSegReader(_coco(tmp_path, images, anns), CLASSES)
    exp = np.full((3, 5), 255, np.uint8)
    exp[1, 1:4] = 2
    assert np.array_equal(reader.mask("n.jpg"), exp)
    # an image absent from the json: all unlabelled at the decoded size
    assert np.array_equal(reader.mask("absent.jpg", height=2, width=3), np.full((2, 3), 255, np.uint8))


@pytest.mark.parametrize("seg", [
    _rle(np.ones((5, 8), np.uint8)),                         # RLE size disagrees with images[].height/width
    {"size": [6, 8], "counts": [10, 5, 10]},                 # uncompressed counts do not cover 6x8
    {"size": [6, 8], "counts": "00000000000000000"},         # compressed counts do not cover 6x8
    {"size": [6, 8], "counts": "\x7f\x7f"},                  # not an RLE string
    {"size": [6, 8], "counts": "0o"},                        # continuation bit on the last char
    {"size": [6], "counts": [48]},                           # bad size
    {"counts": [48]},                                        # no size
    [[1, 2, 3, 4]],                                          # polygon of 2 points (pycocotools reads it as a box)
    [[1, 2, 3, 4, 5]],                                       # odd polygon
    [[1, 2, 3, 4, "5", 6]],                                  # non-numeric polygon
    "garbage",
])
def test_coco_seg_bad_segmentation(tmp_path, seg):
    anns = [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [0, 0, 1, 1], "segmentation": {}},
            {"id": 2, "image_id": 2, "category_id": 7, "bbox": [0, 0, 1, 1], "segmentation": seg}]
    with pytest.raises(YmirError) as e:
        CocoSegReader(_coco(tmp_path, IMAGES, anns), CLASSES)
    _check(e, "coco-annotations.json", "field 'annotations[1].segmentation'")


def test_coco_seg_rle_disagrees_with_decoded_image(tmp_path):
    a = np.ones((3, 5), np.uint8)
    images = [{"id": 1, "file_name": "n.jpg"}]
    anns = [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [0, 0, 5, 3], "segmentation": _rle(a)}]
    reader = CocoSegReader(_coco(tmp_path, images, anns), CLASSES)
    with pytest.raises(YmirError) as e:
        reader.mask("n.jpg", height=4, width=5)
    _check(e, "coco-annotations.json", "field 'annotations[0].segmentation'", "n.jpg")


def test_coco_seg_json_size_disagrees_with_decoded_image(tmp_path):
    reader = CocoSegReader(_coco(tmp_path, IMAGES, []), CLASSES)
    with pytest.raises(YmirError) as e:
        reader.mask("bb22.png", height=600, width=800)
    _check(e, "coco-annotations.json", "field 'images[1].height'", "bb22.png")


def test_coco_seg_no_size_known(tmp_path):
    reader = CocoSegReader(_coco(tmp_path, [{"id": 1, "file_name": "n.jpg"}], []), CLASSES)
    with pytest.raises(YmirError) as e:
        reader.mask("n.jpg")
    _check(e, "coco-annotations.json", "field 'images[0].height'", "n.jpg")


# =========================================================================== seg-mask

def test_seg_mask_subset_of_labelmap(tmp_path):
    labelmap = _write(tmp_path, "labelmap.txt",
                      "# label:color_rgb:parts:actions\n"
                      "bg:0,0,0::\n"
                      "\n"
                      "Dog:1,1,1::\n"
                      "horse:10,20,30::\n"
                      "person: 200, 0, 50 ::\n")
    reader = SegMaskReader(labelmap, ["person", "dog", "cat"])
    assert reader.colors == {0: (200, 0, 50), 1: (1, 1, 1)}
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[0, 0] = (200, 0, 50)
    rgb[0, 1] = (1, 1, 1)
    rgb[0, 2] = (10, 20, 30)   # in the labelmap, not in class_names
    rgb[0, 3] = (7, 7, 7)      # in neither
    rgb[1, :] = (1, 1, 1)
    png = tmp_path / "ab" / "1234ab.png"
    png.parent.mkdir()
    Image.fromarray(rgb).save(str(png), format="PNG")
    exp = np.array([[0, 1, 255, 255], [1, 1, 1, 1]], np.uint8)
    got = reader.mask(str(png))
    assert got.dtype == np.uint8 and np.array_equal(got, exp)

    # a palette PNG carries the same colours
    pal = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=8)
    pal_path = str(tmp_path / "pal.png")
    pal.save(pal_path, format="PNG")
    assert np.array_equal(reader.mask(pal_path), exp)


@pytest.mark.parametrize("text,line,field", [
    ("bg:0,0,0::\nfg\n", 2, "name"),
    ("bg:0,0,0::\nfg:1,1::\n", 2, "color"),
    ("bg:0,0,0::\n\nfg:1,1,256::\n", 3, "color"),
    ("bg:0,0,0::\nfg:a,b,c::\n", 2, "color"),
    ("dog:0,0,0::\nBG:0,0,1::\nbg:0,0,2::\n", 3, "name"),       # duplicate label
    ("dog:5,5,5::\ncat:5,5,5::\n", 2, "color"),                   # two classes, one colour
])
def test_bad_labelmap(tmp_path, text, line, field):
    path = _write(tmp_path, "labelmap.txt", text)
    with pytest.raises(YmirError) as e:
        SegMaskReader(path, CLASSES)
    _check(e, f"labelmap.txt:{line}", f"field '{field}'")


def test_seg_mask_not_png_or_truncated(tmp_path):
    reader = SegMaskReader(_write(tmp_path, "labelmap.txt", "dog:1,1,1::\n"), CLASSES)
    jpg = tmp_path / "m1.png"
    Image.new("RGB", (4, 4)).save(str(jpg), format="JPEG")
    with pytest.raises(YmirError) as e:
        reader.mask(str(jpg))
    _check(e, "m1.png", "field 'mask'", "not a PNG")

    rng = np.random.default_rng(0)
    full = tmp_path / "full.png"
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(str(full), format="PNG")
    cut = tmp_path / "m2.png"
    cut.write_bytes(full.read_bytes()[:-300])
    with pytest.raises(YmirError) as e:
        reader.mask(str(cut))
    _check(e, "m2.png", "field 'mask'")


def test_rle_string_counts_match_pycocotools_runs():
    # the pre-check decoder must agree with pycocotools' encoder on real masks
    from executor.annotations import _rle_string_counts

    rng = np.random.default_rng(3)
    for t in range(40):
        h, w = (int(v) for v in rng.integers(1, 120, 2))
        m = (rng.random((h, w)) > rng.random()).astype(np.uint8)
        if t % 2:
            m[:] = 0
            m[h // 3:, w // 4:] = 1
        got = _rle_string_counts(_rle(m)["counts"])
        assert got.tolist() == _uncompressed_rle(m)["counts"]
    assert _rle_string_counts("0o") is None  # dangling continuation
    assert _rle_string_counts("\x7f") is None


def test_no_torch_import():
    import subprocess
    import sys

    code = "import sys, executor.annotations, executor.images, executor.index; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
