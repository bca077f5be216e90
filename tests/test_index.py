"""executor.index: TAB-separated index files, /in mapping, precise errors."""
from __future__ import annotations

import pytest

from executor.env import PathMap
from executor.errors import ErrorCode, YmirError
from executor.index import CandidateList, count_lines, iter_candidates, read_index


def _check(exc_info, *needles: str) -> None:
    err = exc_info.value
    assert isinstance(err, YmirError)
    assert err.code == ErrorCode.DATASET
    text = str(err)
    assert "\n" not in text
    for n in needles:
        assert n in text, (n, text)


@pytest.fixture()
def in_dir(tmp_path):
    """A local stand-in for /in with two assets (one with spaces) and their annotations."""
    root = tmp_path / "in"
    (root / "assets" / "ab").mkdir(parents=True)
    (root / "assets" / "my photos").mkdir(parents=True)
    (root / "annotations" / "ab").mkdir(parents=True)
    (root / "assets" / "ab" / "1234ab.jpg").write_bytes(b"x")
    (root / "assets" / "my photos" / "cat 1.png").write_bytes(b"x")
    (root / "annotations" / "ab" / "1234ab.txt").write_text("")
    (root / "annotations" / "ab" / "cat 1.txt").write_text("")
    return root


def test_train_index_tabs_blank_lines_spaces_and_mapping(in_dir, tmp_path):
    idx = tmp_path / "train-index.tsv"
    idx.write_text(
        "/in/assets/ab/1234ab.jpg\t/in/annotations/ab/1234ab.txt\n"
        "\n"
        "   \n"
        "/in/assets/my photos/cat 1.png\t/in/annotations/ab/cat 1.txt\r\n"
    )
    pm = PathMap(in_dir=str(in_dir), out_dir=str(tmp_path / "out"))
    entries = read_index(str(idx), path_map=pm)
    assert [(e.image, e.annotation, e.line, e.raw_image) for e in entries] == [
        (f"{in_dir}/assets/ab/1234ab.jpg", f"{in_dir}/annotations/ab/1234ab.txt", 1,
         "/in/assets/ab/1234ab.jpg"),
        (f"{in_dir}/assets/my photos/cat 1.png", f"{in_dir}/annotations/ab/cat 1.txt", 4,
         "/in/assets/my photos/cat 1.png"),
    ]
    assert count_lines(str(idx)) == 2


def test_index_without_mapping_keeps_absolute_paths(in_dir, tmp_path):
    idx = tmp_path / "val-index.tsv"
    img, ann = in_dir / "assets" / "ab" / "1234ab.jpg", in_dir / "annotations" / "ab" / "1234ab.txt"
    idx.write_text(f"{img}\t{ann}\n")
    (e,) = read_index(str(idx))
    assert (e.image, e.annotation, e.line) == (str(img), str(ann), 1)


def test_candidates_one_column_and_legacy_two_columns(in_dir, tmp_path):
    idx = tmp_path / "candidate-index.tsv"
    idx.write_text(
        "/in/assets/my photos/cat 1.png\n"
        "\n"
        "/in/assets/ab/1234ab.jpg\t/in/annotations/ab/1234ab.txt\n"  # older exports: 2nd column ignored
    )
    pm = PathMap(in_dir=str(in_dir))
    got = [(e.image, e.annotation, e.line) for e in iter_candidates(str(idx), path_map=pm)]
    assert got == [(f"{in_dir}/assets/my photos/cat 1.png", None, 1),
                   (f"{in_dir}/assets/ab/1234ab.jpg", None, 3)]


def test_check_exists_false_skips_file_checks(tmp_path):
    idx = tmp_path / "train-index.tsv"
    idx.write_text("/in/assets/none.jpg\t/in/annotations/none.txt\n")
    (e,) = read_index(str(idx), path_map=PathMap(in_dir="/data/in"), check_exists=False)
    assert (e.image, e.annotation) == ("/data/in/assets/none.jpg", "/data/in/annotations/none.txt")


# --------------------------------------------------------------------------- malformed inputs

def test_three_columns(in_dir, tmp_path):
    idx = tmp_path / "train-index.tsv"
    idx.write_text("/in/assets/ab/1234ab.jpg\t/in/annotations/ab/1234ab.txt\n"
                   "/in/assets/ab/1234ab.jpg\t/in/annotations/ab/1234ab.txt\textra\n")
    with pytest.raises(YmirError) as e:
        read_index(str(idx), path_map=PathMap(in_dir=str(in_dir)))
    _check(e, "train-index.tsv:2", "3 field")


def test_one_column_in_train_index(in_dir, tmp_path):
    idx = tmp_path / "train-index.tsv"
    idx.write_text("\n/in/assets/ab/1234ab.jpg\n")
    with pytest.raises(YmirError) as e:
        read_index(str(idx), path_map=PathMap(in_dir=str(in_dir)))
    _check(e, "train-index.tsv:2", "1 field")


def test_space_separated_is_not_tab_separated(in_dir, tmp_path):
    idx = tmp_path / "val-index.tsv"
    idx.write_text("/in/assets/ab/1234ab.jpg /in/annotations/ab/1234ab.txt\n")
    with pytest.raises(YmirError) as e:
        read_index(str(idx), path_map=PathMap(in_dir=str(in_dir)))
    _check(e, "val-index.tsv:1")


def test_empty_annotation_column(in_dir, tmp_path):
    idx = tmp_path / "train-index.tsv"
    idx.write_text("/in/assets/ab/1234ab.jpg\t\n")
    with pytest.raises(YmirError) as e:
        read_index(str(idx), path_map=PathMap(in_dir=str(in_dir)))
    _check(e, "train-index.tsv:1")


def test_missing_image(in_dir, tmp_path):
    idx = tmp_path / "train-index.tsv"
    idx.write_text("/in/assets/ab/1234ab.jpg\t/in/annotations/ab/1234ab.txt\n"
                   "/in/assets/ab/gone.jpg\t/in/annotations/ab/1234ab.txt\n")
    with pytest.raises(YmirError) as e:
        read_index(str(idx), path_map=PathMap(in_dir=str(in_dir)))
    _check(e, "train-index.tsv:2", "image not found", "/in/assets/ab/gone.jpg")


def test_missing_annotation(in_dir, tmp_path):
    idx = tmp_path / "train-index.tsv"
    idx.write_text("/in/assets/ab/1234ab.jpg\t/in/annotations/ab/gone.txt\n")
    with pytest.raises(YmirError) as e:
        read_index(str(idx), path_map=PathMap(in_dir=str(in_dir)))
    _check(e, "train-index.tsv:1", "annotation not found", "gone.txt")


def test_missing_candidate_image(in_dir, tmp_path):
    idx = tmp_path / "candidate-index.tsv"
    idx.write_text("/in/assets/my photos/cat 1.png\n/in/assets/my photos/dog 2.png\n")
    with pytest.raises(YmirError) as e:
        list(iter_candidates(str(idx), path_map=PathMap(in_dir=str(in_dir))))
    _check(e, "candidate-index.tsv:2", "dog 2.png")


def test_candidate_line_with_empty_first_column(in_dir, tmp_path):
    idx = tmp_path / "candidate-index.tsv"
    idx.write_text("/in/assets/ab/1234ab.jpg\n\t/in/assets/ab/1234ab.jpg\n")
    with pytest.raises(YmirError) as e:
        list(iter_candidates(str(idx), path_map=PathMap(in_dir=str(in_dir))))
    _check(e, "candidate-index.tsv:2", "empty image path")


def test_index_file_not_found(tmp_path):
    with pytest.raises(YmirError) as e:
        read_index(str(tmp_path / "train-index.tsv"))
    _check(e, "train-index.tsv", "not found")


def test_empty_index_path():
    with pytest.raises(YmirError) as e:
        read_index("")
    _check(e, "field 'input'")


def test_candidate_list_is_the_distinct_candidates_with_local_paths_and_lazy_shares(in_dir, tmp_path):
    idx = tmp_path / "candidate-index.tsv"
    idx.write_text("/in/assets/my photos/cat 1.png\n/in/assets/ab/1234ab.jpg\n\n"
                   "/in/assets/my photos/cat 1.png\n")  # a repeated row: each image once
    pm = PathMap(in_dir=str(in_dir))
    pool = CandidateList.read(str(idx), path_map=pm)
    cat, ab = f"{in_dir}/assets/my photos/cat 1.png", f"{in_dir}/assets/ab/1234ab.jpg"
    assert pool.raw == ["/in/assets/my photos/cat 1.png", "/in/assets/ab/1234ab.jpg"]
    assert len(pool) == 2 and list(pool) == [(0, cat), (1, ab)] and pool[-1] == (1, ab)
    # one process's share is a view that keeps the candidate numbers of the whole pool
    share = pool[1::2]
    assert isinstance(share, CandidateList) and len(share) == 1 and list(share) == [(1, ab)]
    assert share.local(0) == cat and pool.local(1) == ab and len(pool.raw) == 2
    with pytest.raises(IndexError):
        share[1]


def test_candidate_list_names_a_missing_image(in_dir, tmp_path):
    idx = tmp_path / "candidate-index.tsv"
    idx.write_text("/in/assets/ab/1234ab.jpg\n/in/assets/ab/gone.jpg\n")
    with pytest.raises(YmirError) as e:
        CandidateList.read(str(idx), path_map=PathMap(in_dir=str(in_dir)))
    _check(e, "candidate-index.tsv:2", "gone.jpg")


def test_candidate_list_keeps_the_3d_label_column_as_index_paths(in_dir, tmp_path):
    (in_dir / "labels").mkdir(exist_ok=True)
    (in_dir / "labels" / "a.txt").write_text("")
    idx = tmp_path / "candidate-index.tsv"
    idx.write_text("/in/assets/ab/1234ab.jpg\t/in/labels/a.txt\n/in/assets/my photos/cat 1.png\n")
    pool = CandidateList.read(str(idx), path_map=PathMap(in_dir=str(in_dir)), with_labels=True)
    ab, cat = f"{in_dir}/assets/ab/1234ab.jpg", f"{in_dir}/assets/my photos/cat 1.png"
    assert pool.labels == ["/in/labels/a.txt", None]
    assert list(pool) == [(0, ab, f"{in_dir}/labels/a.txt"), (1, cat, None)]
    assert list(pool[1::2]) == [(1, cat, None)] and pool[1::2].local_labels(0) == f"{in_dir}/labels/a.txt"
    (in_dir / "labels" / "a.txt").unlink()
    with pytest.raises(YmirError) as e:
        CandidateList.read(str(idx), path_map=PathMap(in_dir=str(in_dir)), with_labels=True)
    _check(e, "candidate-index.tsv:1", "a.txt")
