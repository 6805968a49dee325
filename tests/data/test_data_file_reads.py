"""Class lists and split files are small inputs a user names: they are read as regular files only,
with a size cap, a UTF-8 BOM dropped, and one short line naming the file when refused (issue 18,
class 2). A FIFO must be refused before anything blocks on it."""
import os

import pytest

from segnext_jt.data.custom import MAX_CLASSES_FILE_BYTES, read_classes_file
from segnext_jt.data.dataset import MAX_SPLIT_FILE_BYTES, _read_split_file
from segnext_jt.errors import DataError

READERS = [(read_classes_file, MAX_CLASSES_FILE_BYTES, "classes file"),
           (_read_split_file, MAX_SPLIT_FILE_BYTES, "split file")]




def _one_line_naming(exc_info, path, *words):
    text = str(exc_info.value)
    assert "\n" not in text and str(path) in text and len(text) < 400, text
    for word in words:
        assert word in text, text


@pytest.mark.parametrize("read, cap, what", READERS)
def test_fifo_is_refused_without_blocking(tmp_path, alarm, read, cap, what):
    fifo = tmp_path / "names.txt"
    os.mkfifo(fifo)
    with pytest.raises(DataError) as exc:
        read(str(fifo))
    _one_line_naming(exc, fifo, "FIFO", what)
    link = tmp_path / "link.txt"  # a symlink to a FIFO is followed to the FIFO and refused
    link.symlink_to(fifo)
    with pytest.raises(DataError, match="FIFO"):
        read(str(link))


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
@pytest.mark.parametrize("read, cap, what", READERS)
def test_devices_are_refused(tmp_path, alarm, read, cap, what, device):
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    with pytest.raises(DataError) as exc:
        read(device)
    _one_line_naming(exc, device, "device")
    link = tmp_path / "x.txt"
    link.symlink_to(device)
    with pytest.raises(DataError, match="device"):
        read(str(link))


@pytest.mark.parametrize("read, cap, what", READERS)
def test_directory_socket_and_missing(tmp_path, read, cap, what):
    with pytest.raises(DataError) as exc:
        read(str(tmp_path))
    _one_line_naming(exc, tmp_path, "directory")
    with pytest.raises(DataError) as exc:
        read(str(tmp_path / "absent.txt"))
    _one_line_naming(exc, tmp_path / "absent.txt", "not found")
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "gone.txt")
    with pytest.raises(DataError, match="not found"):
        read(str(dangling))
    import socket
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(DataError, match="socket"):
            read(str(sock_path))


@pytest.mark.parametrize("read, cap, what", READERS)
def test_size_cap(tmp_path, read, cap, what):
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:  # sparse: costs no disk
        f.truncate(cap + 1)
    with pytest.raises(DataError) as exc:
        read(str(big))
    _one_line_naming(exc, big, f"{cap:,} bytes")


@pytest.mark.parametrize("bom", [b"\xef\xbb\xbf", b""])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_bom_dropped_and_line_endings(tmp_path, bom, newline):
    path = tmp_path / "classes.txt"
    path.write_bytes(bom + newline.join([b"sky", b"road", "caf\u00e9".encode()]) + newline)
    assert read_classes_file(str(path)) == ("sky", "road", "caf\u00e9")
    assert _read_split_file(str(path)) == ["sky", "road", "caf\u00e9"]


def test_a_bom_elsewhere_is_not_dropped_and_a_duplicate_after_bom_is_caught(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_bytes(b"\xef\xbb\xbfsky\nroad\nsky\n")  # the BOM would have hidden the duplicate
    with pytest.raises(DataError, match=r"line 3: class 'sky' appears twice"):
        read_classes_file(str(path))


@pytest.mark.parametrize("read, cap, what", READERS)
def test_not_utf8_names_the_line(tmp_path, read, cap, what):
    path = tmp_path / "x.txt"
    path.write_bytes(b"a\nb\n\xff\xfe\n")
    with pytest.raises(DataError) as exc:
        read(str(path))
    _one_line_naming(exc, path, "line 3", "0xff", "UTF-8")


def test_hostile_names_are_shortened_in_messages(tmp_path):
    name = "x" * 200_000
    path = tmp_path / "classes.txt"
    path.write_text(f"{name}\n{name}\n")
    with pytest.raises(DataError) as exc:
        read_classes_file(str(path))
    _one_line_naming(exc, path, "appears twice")


def test_split_file_sample_with_a_huge_name_is_shortened(tmp_path):
    from segnext_jt.data.dataset import SplitSource, _pairs_from_split_file
    (tmp_path / "img").mkdir()
    (tmp_path / "ann").mkdir()
    split = tmp_path / "train.txt"
    split.write_text("y" * 100_000 + "\n")
    fields = SplitSource._fields
    values = dict(img_dir=str(tmp_path / "img"), ann_dir=str(tmp_path / "ann"), split_file=str(split))
    source = SplitSource(**{k: values.get(k) for k in fields})
    with pytest.raises(DataError) as exc:
        _pairs_from_split_file(source, (".jpg",), ".png")
    assert "has no image" in str(exc.value) and len(str(exc.value)) < 800
