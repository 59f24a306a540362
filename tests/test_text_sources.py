"""Item text sources, each exercised with real files written into tmp_path:
sidecars (.txt/.json/.xmp), metadata embedded in JPEG/PNG (EXIF, XP tags, IPTC, XMP),
manifests (.csv/.tsv/.jsonl/.parquet) and path words."""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_path
from PIL import Image, PngImagePlugin

from mmembed.errors import ConfigError
from mmembed.text import (
    RESERVED_COLUMNS,
    SIDECAR_KINDS,
    embedded_texts,
    find_sidecars,
    path_text,
    read_sidecars,
)
from mmembed.text.manifest import Manifest

LIGHTROOM_XMP = """<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0-c000 1.000000">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"
   xmp:CreatorTool="Adobe Photoshop Lightroom Classic 12.0 (Windows)"
   xmp:Rating="4"
   crs:Exposure2012="+0.35">
   <dc:description>
    <rdf:Alt>
     <rdf:li xml:lang="de-DE">Zwei Hunde am Strand bei Sonnenuntergang</rdf:li>
     <rdf:li xml:lang="x-default">Two dogs on the beach at sunset</rdf:li>
    </rdf:Alt>
   </dc:description>
   <dc:title>
    <rdf:Alt>
     <rdf:li xml:lang="x-default">Evening walk</rdf:li>
    </rdf:Alt>
   </dc:title>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>dogs</rdf:li>
     <rdf:li>beach</rdf:li>
     <rdf:li>sunset</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>Places|Germany|Sylt</rdf:li>
     <rdf:li>Animals|Dogs</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""

LIGHTROOM_TEXTS = [
    "Two dogs on the beach at sunset",
    "Zwei Hunde am Strand bei Sonnenuntergang",
    "Evening walk",
    "dogs, beach, sunset",
    "Sylt, Dogs",
]

# XMP written as attributes of rdf:Description (what some exporters do), in a packet wrapper.
ATTRIBUTE_XMP = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
 <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
   xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
   dc:description="A red tram in Lisbon" lr:hierarchicalSubject="Places|Portugal|Lisbon"/>
</rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"""


def _jpeg(exif: Image.Exif | None = None, **save: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 60, 30)).save(buf, "JPEG", exif=exif or Image.Exif(), **save)
    return buf.getvalue()


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def _with_iptc(jpeg: bytes, records: list[tuple[int, bytes]]) -> bytes:
    """Splice an APP13 'Photoshop 3.0' segment holding an IPTC block (8BIM resource 0x0404) after SOI."""
    iptc = b"".join(b"\x1c\x02" + bytes([tag]) + struct.pack(">H", len(v)) + v for tag, v in records)
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    resource += b"\x00" * (len(iptc) % 2)
    payload = b"Photoshop 3.0\x00" + resource
    segment = b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + segment + jpeg[2:]


# ------------------------------------------------------------------ sidecars


def test_sidecar_kinds_and_precedence() -> None:
    assert SIDECAR_KINDS == ("txt", "json", "xmp")
    names = ["IMG_1.jpg", "IMG_1.XMP", "img_1.json", "IMG_1.jpg.txt", "IMG_1.txt", "IMG_10.txt", "IMG_1.jpg.xmp"]
    assert find_sidecars("IMG_1.jpg", names) == [
        "IMG_1.jpg.txt", "IMG_1.txt", "img_1.json", "IMG_1.jpg.xmp", "IMG_1.XMP",
    ]  # fmt: skip
    assert find_sidecars("IMG_1.jpg", frozenset(names)) == find_sidecars("IMG_1.jpg", names)
    assert find_sidecars("IMG_2.jpg", names) == []


def test_find_sidecars_never_returns_the_image_itself() -> None:
    assert find_sidecars("scan.xmp", ["scan.xmp", "scan.xmp.txt"]) == ["scan.xmp.txt"]


def test_txt_sidecar_bom_and_whitespace(tmp_path: Path) -> None:
    (tmp_path / "a.jpg.txt").write_bytes("\ufeff  A dog\n\n on the   beach \n".encode())
    assert read_sidecars(str(tmp_path), ["a.jpg.txt"]) == ["A dog on the beach"]


def test_empty_txt_falls_through_to_next_sidecar(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(" \n\t")
    (tmp_path / "a.json").write_text(json.dumps({"caption": "from json"}))
    assert read_sidecars(str(tmp_path), ["a.txt", "a.json"]) == ["from json"]


def test_json_sidecar_captions_and_tags(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({
        "caption": ["A brown dog runs", "A dog on grass"],
        "description": "A dog on grass",  # a duplicate: kept once
        "captions": ["Puppy playing"],
        "tags": ["dog", "grass", 3],
        "keywords": ["outdoors"],
        "rating": 5,
    }))  # fmt: skip
    assert read_sidecars(str(tmp_path), ["a.json"]) == [
        "A brown dog runs", "A dog on grass", "Puppy playing", "dog, grass, 3, outdoors",
    ]  # fmt: skip


def test_xmp_sidecar_lightroom(tmp_path: Path) -> None:
    (tmp_path / "IMG_1.xmp").write_text(LIGHTROOM_XMP, encoding="utf-8")
    assert read_sidecars(str(tmp_path), ["IMG_1.xmp"]) == LIGHTROOM_TEXTS


def test_xmp_sidecar_utf16_and_attributes(tmp_path: Path) -> None:
    (tmp_path / "a.xmp").write_bytes(ATTRIBUTE_XMP.encode("utf-16"))
    assert read_sidecars(str(tmp_path), ["a.xmp"]) == ["A red tram in Lisbon", "Lisbon"]


def test_broken_sidecars_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "a.jpg.txt").write_bytes("café crème".encode("cp1252"))  # not UTF-8: unreadable
    (tmp_path / "a.json").write_text('{"caption": "unterminated')
    (tmp_path / "b.json").write_text('["a list, not an object"]')
    (tmp_path / "a.xmp").write_text("<x:xmpmeta><rdf:RDF>")
    (tmp_path / "evil.xmp").write_text(
        '<!DOCTYPE x [<!ENTITY a "dog">]><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:description="&a;"/></rdf:RDF></x:xmpmeta>'
    )
    (tmp_path / "good.xmp").write_text(LIGHTROOM_XMP)
    broken = ["a.jpg.txt", "a.json", "b.json", "missing.txt", "a.xmp", "evil.xmp"]
    assert read_sidecars(str(tmp_path), broken) == []
    assert read_sidecars(str(tmp_path), [*broken, "good.xmp"]) == LIGHTROOM_TEXTS


# ------------------------------------------------------------------ embedded metadata


def test_exif_description_xp_tags_and_user_comment() -> None:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x010E] = "Straße am Fluss".encode()  # UTF-8 in an ASCII tag, as modern tools write it
    exif[0x9C9B] = tuple("Riverside".encode("utf-16-le") + b"\x00\x00")  # XPTitle as BYTE ints
    exif[0x9C9C] = "A quiet morning".encode("utf-16-le") + b"\x00\x00"
    exif[0x9C9E] = "river;morning;;fog".encode("utf-16-le") + b"\x00\x00"
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + "Mist über dem Wasser".encode("utf-16-be")
    assert embedded_texts(_open(_jpeg(exif))) == [
        "Straße am Fluss", "Mist über dem Wasser", "Riverside", "A quiet morning", "river, morning, fog",
    ]  # fmt: skip


def test_camera_junk_is_filtered() -> None:
    for junk in ["OLYMPUS DIGITAL CAMERA         ", "SONY DSC", "KODAK Digital Still Camera", "Untitled",
                 "          ", "2019:08:01 12:00", "IMG_0231", "DC Camera Co X-100", "abc\x00def\x00\x00"]:  # fmt: skip
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "DC Camera Co", "X-100"
        exif[0x010E] = junk
        exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00" + b" " * 40
        assert embedded_texts(_open(_jpeg(exif))) == [], junk
    exif = Image.Exif()
    exif[0x010E] = "Image of a lighthouse\x00\x00\x00"  # trailing NULs are padding, not junk
    assert embedded_texts(_open(_jpeg(exif))) == ["Image of a lighthouse"]


def test_xmp_packet_in_jpeg_and_png() -> None:
    jpeg = _open(_jpeg(xmp=LIGHTROOM_XMP.encode()))
    assert jpeg.info.get("xmp"), "this Pillow cannot write XMP into JPEG"
    assert embedded_texts(jpeg) == LIGHTROOM_TEXTS
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", ATTRIBUTE_XMP)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG", pnginfo=info)
    assert embedded_texts(_open(buf.getvalue())) == ["A red tram in Lisbon", "Lisbon"]


def test_iptc_caption_and_keywords() -> None:
    data = _with_iptc(_jpeg(), [(120, b"Harbour at dawn"), (25, b"harbour"), (25, b"boats"), (5, b"DSC01234")])
    image = _open(data)
    assert image.info.get("photoshop"), "the hand-built APP13 segment was not recognised"
    assert embedded_texts(image) == ["Harbour at dawn", "harbour, boats"]


def test_sources_merge_captions_first_and_deduplicate() -> None:
    exif = Image.Exif()
    exif[0x010E] = "Two dogs on the beach at sunset"
    data = _with_iptc(_jpeg(exif, xmp=LIGHTROOM_XMP.encode()), [(120, b"two dogs on the beach at sunset"),
                                                                  (25, b"dogs"), (25, b"beach")])  # fmt: skip
    assert embedded_texts(_open(data)) == [
        "Two dogs on the beach at sunset",
        "Zwei Hunde am Strand bei Sonnenuntergang",
        "Evening walk",
        "dogs, beach",
        "dogs, beach, sunset",
        "Sylt, Dogs",
    ]


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_broken_metadata_never_raises() -> None:
    exif = Image.Exif()
    exif[0x010E] = "Kept despite the broken XMP"
    image = _open(_jpeg(exif, xmp=b"<x:xmpmeta><unclosed"))
    assert embedded_texts(image) == ["Kept despite the broken XMP"]
    image.info["exif"] = b"Exif\x00\x00II*\x00\xff\xff\xff\x7f"  # IFD offset far past the end
    image.info["photoshop"] = {0x0404: b"\x1c\x02\x78\xff\xff"}  # IPTC length past the end
    image.info["xmp"] = b'<!DOCTYPE x [<!ENTITY a "b">]><x/>'
    assert embedded_texts(image) == []


def test_shared_photo_with_keywords_and_camera_junk() -> None:
    picasa = shared_path("data/photos/phone_formats/metadata/tags/picasa.jpg")
    with Image.open(picasa) as image:
        assert "Frost, Yard" in embedded_texts(image)
    with Image.open(shared_path("data/photos/camera_exif/exif-org/olympus-c960.jpg")) as image:
        assert embedded_texts(image) == []  # 'OLYMPUS DIGITAL CAMERA' and a blank UserComment


# ------------------------------------------------------------------ path words


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        ("/r/germany/2019/beach_day-03.jpg", "/r", "germany 2019 beach day"),
        ("/r/Trips/IMG_20190612_1234.JPG", "/r", "Trips"),
        ("/r/camera/DSCN0010.jpg", "/r", "camera"),
        ("/r/2090545563_a4e66ec76b.jpg", "/r", ""),
        ("/r/old/1850/scan 1899 copy (2).png", "/r", "old scan"),
        ("/elsewhere/paris/eiffel_tower.jpg", "/r", "eiffel tower"),
        ("/r/Crémieux.tiff", "/r", "Crémieux"),
        ("/r/x/Screenshot_2021-03-04-10-11-12.png", "/r/x", "2021"),
        ("/r", "/r", "r"),
    ],
)
def test_path_text(path: str, root: str, expected: str) -> None:
    assert path_text(path, root) == expected


# ------------------------------------------------------------------ manifests


def _write_manifests(folder: Path) -> dict[str, Path]:
    rows = [
        {"Image": "dev/a.jpg", "caption": "A dog runs", "Rating": 4, "Camera Model": "X100", "Score Adj": 0.5, "fav": True},
        {"Image": "./dev/a.jpg", "caption": "A brown dog", "Rating": 3, "Camera Model": None, "Score Adj": 1.0, "fav": False},
        {"Image": "dev/b.jpg", "caption": "", "Rating": None, "Camera Model": "Z6", "Score Adj": 2.0, "fav": None},
    ]  # fmt: skip
    csv_path = folder / "captions.csv"
    lines = ['Image,caption,Rating,Camera Model,Score Adj']
    for r in rows:
        lines.append(f'{r["Image"]},"{r["caption"]}",{r["Rating"] or ""},{r["Camera Model"] or ""},{r["Score Adj"]}')
    csv_path.write_text("\n".join(lines) + "\n")
    tsv_path = folder / "captions.tsv"
    tsv_path.write_text("".join(line.replace(",", "\t").replace('"', "") + "\n" for line in lines))
    jsonl_path = folder / "captions.jsonl"
    jsonl_path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    parquet_path = folder / "captions.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet_path)
    return {"csv": csv_path, "tsv": tsv_path, "jsonl": jsonl_path, "parquet": parquet_path}


@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl", "parquet"])
def test_manifest_formats(tmp_path: Path, kind: str) -> None:
    manifest = Manifest.load(_write_manifests(tmp_path)[kind])
    assert manifest.path == str(tmp_path / f"captions.{kind}")
    assert manifest.texts == {"dev/a.jpg": ["A dog runs", "A brown dog"], "dev/b.jpg": []}
    assert manifest.extras["dev/a.jpg"] == {
        "rating": 4, "camera_model": "X100", "score_adj": 0.5, **({"fav": True} if kind in ("jsonl", "parquet") else {}),
    }  # fmt: skip
    assert manifest.extras["dev/b.jpg"]["camera_model"] == "Z6"
    assert "rating" not in manifest.extras["dev/b.jpg"]
    assert manifest.extra_columns["rating"] == pa.int64()
    assert manifest.extra_columns["camera_model"] == pa.string()
    assert manifest.extra_columns["score_adj"] == pa.float64()
    if kind in ("jsonl", "parquet"):
        assert manifest.extra_columns["fav"] == pa.bool_()


def test_manifest_lookup(tmp_path: Path) -> None:
    manifest = Manifest.load(_write_manifests(tmp_path)["csv"])
    assert manifest.lookup(str(tmp_path / "dev" / "a.jpg"), roots=[]) == "dev/a.jpg"
    assert manifest.lookup(str(tmp_path / "dev" / "c.jpg"), roots=[str(tmp_path)]) is None
    absolute = tmp_path / "abs.csv"
    absolute.write_text(f"path,text\n{tmp_path}/elsewhere//./x.jpg,hello\n")
    abs_manifest = Manifest.load(absolute)
    assert abs_manifest.lookup(str(tmp_path / "elsewhere" / "x.jpg"), roots=[]) == str(tmp_path / "elsewhere" / "x.jpg")
    # flickr8k layout: dev_captions.csv lists bare names of images that live in dev/
    bare = tmp_path / "dev_captions.csv"
    bare.write_text("image,caption\nx.jpg,a cat\n")
    bare_manifest = Manifest.load(bare)
    image = str(tmp_path / "dev" / "x.jpg")
    assert bare_manifest.lookup(image, roots=[]) is None
    assert bare_manifest.lookup(image, roots=[str(tmp_path / "other"), str(tmp_path / "dev")]) == "x.jpg"
    assert bare_manifest.texts["x.jpg"] == ["a cat"]
    # a root-relative key is only tried for images under that root
    up = tmp_path / "m" / "up.csv"
    up.parent.mkdir()
    up.write_text("image,caption\n../q/x.jpg,a fish\n")
    up_manifest = Manifest.load(up)
    assert up_manifest.lookup(str(tmp_path / "q" / "x.jpg"), roots=[]) == "../q/x.jpg"
    assert up_manifest.lookup(str(tmp_path / "z" / "q" / "x.jpg"), roots=[str(tmp_path / "z" / "r")]) is None


def test_manifest_numeric_csv_columns_fall_back_to_string(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("file,description,year,weight,code\na.jpg,x,2019,1.5,A1\nb.jpg,y,2020,2,7\n")
    manifest = Manifest.load(path)
    assert manifest.extra_columns == {"year": pa.int64(), "weight": pa.float64(), "code": pa.string()}
    assert manifest.extras["b.jpg"] == {"year": 2020, "weight": 2.0, "code": "7"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.csv", "image,caption,Path\na.jpg,x,y\n", "'Path' clashes with mmembed's own column 'path'; rename it"),
        ("m.csv", "image,caption,Text Hash\na.jpg,x,y\n", "'Text Hash' clashes with mmembed's own column 'text_hash'"),
        ("m.csv", "image,caption,\na.jpg,x,y\n", "column '' has no usable name"),
        ("m.csv", "image,caption\na.jpg,x\n,orphan caption\n", "line 3 has an empty 'image' value"),
        ("m.csv", "image,caption\na.jpg,a dog, running\n", "line 2 has 3 fields but the header has 2; quote"),
        ("m.csv", "name,caption\na.jpg,x\n", "no image column; name one of image, path"),
        ("m.csv", "image,label\na.jpg,x\n", "no text column; name one of caption, text, description"),
        ("m.jsonl", '{"image": "a.jpg", "caption": "x"}\n[1, 2]\n', "line 2 is not a JSON object"),
        ("m.jsonl", '{"image": "a.jpg", "caption": "x"}\n{"image": \n', "line 2 is not valid JSON"),
        ("m.parquet", "not parquet", "not a readable Parquet file"),
        ("m.json", "{}", "unknown manifest format '.json'; use .csv, .tsv, .jsonl or .parquet"),
    ],
)
def test_manifest_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        Manifest.load(path)
    text = str(info.value)
    assert text.startswith(str(path) + ": ") and message in text and "\n" not in text


def test_manifest_missing_and_reserved_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="manifest not found; check the path"):
        Manifest.load(tmp_path / "nope.csv")
    assert {"path", "text", "image_vector", "fused_vector"} <= RESERVED_COLUMNS
    parquet = tmp_path / "m.parquet"
    pq.write_table(pa.table({"filepath": ["a.jpg", None], "caption": ["x", "y"]}), parquet)
    with pytest.raises(ConfigError, match=r"row 2 has an empty 'filepath' value"):
        Manifest.load(parquet)


def test_manifest_key_normalisation(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"image": "./sub//x.jpg", "caption": ["one", "two"]}\n{"image": "sub\\\\x.jpg", "caption": "three"}\n'
        f'{{"image": "{tmp_path}/sub/../y.jpg", "caption": "four", "meta": {{"k": 1}}}}\n'
    )
    manifest = Manifest.load(path)
    assert manifest.texts == {"sub/x.jpg": ["one", "two", "three"], os.path.normpath(f"{tmp_path}/y.jpg"): ["four"]}
    assert manifest.extra_columns == {"meta": pa.string()}
    assert manifest.extras[str(tmp_path / "y.jpg")] == {"meta": '{"k": 1}'}
