"""Finding a scorecard's samples on disk and showing them: image thumbnails, audio
players, text with a word diff against its reference.

A per-sample id is located from the scorecard's ``inputs``: folders hold the sample
under its id (text ids keep the ``.txt``; image and audio ids lack the extension, so
``id.*`` with a known suffix is looked for), line files (``.txt``/``.jsonl``) by
``"id"`` or line number, image arrays (``name.npz#000042``) by index. Relative paths
are tried against ``root`` (default: the current folder), then the scorecard's folder and
its parent.
"""

from __future__ import annotations

import difflib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genmetrics.report._html import MediaStore, esc

THUMB = 128  # longer side of a thumbnail, pixels
AUDIO_SECONDS = 4.0  # audio players hold the first seconds only
AUDIO_RATE = 16000  # ... downmixed to mono, at most this rate
TEXT_CHARS = 2000  # text shown per side
INLINE = " (inline)"  # how the runner names references given inside a .jsonl


@dataclass
class Item:
    """One side of a pair: a file, a text, or an image from an array; ``problem`` when
    it cannot be shown (e.g. ``file not found``)."""

    label: str
    path: Path | None = None
    text: str | None = None
    array: Any = None
    problem: str | None = None


def word_diff(reference: str, hypothesis: str) -> str:
    """HTML of the word-level edits that turn ``reference`` into ``hypothesis``:
    ``<del>`` for reference words the output lacks, ``<ins>`` for words it adds.

        >>> word_diff("the cat sat", "the dog sat down")
        'the <del>cat</del> <ins>dog</ins> sat <ins>down</ins>'
    """
    a, b = reference.split(), hypothesis.split()
    parts = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            parts.append(esc(" ".join(a[i1:i2])))
        if tag in ("delete", "replace"):
            parts.append(f"<del>{esc(' '.join(a[i1:i2]))}</del>")
        if tag in ("insert", "replace"):
            parts.append(f"<ins>{esc(' '.join(b[j1:j2]))}</ins>")
    return " ".join(parts)


def closest(references: list[str], hypothesis: str) -> int:
    """Index of the reference most similar (word-level) to ``hypothesis``.

        >>> closest(["a b c", "x y z"], "x y q")
        1
    """
    words = hypothesis.split()
    ratios = [difflib.SequenceMatcher(a=r.split(), b=words, autojunk=False).ratio()
              for r in references]
    return max(range(len(references)), key=lambda i: (ratios[i], -i))


# ------------------------------------------------------------------ locating files


def _resolve(path: str, bases: list[Path]) -> Path | None:
    candidate = Path(path)
    if candidate.is_absolute():
        return candidate if candidate.exists() else None
    for base in bases:
        if (base / candidate).exists():
            return base / candidate
    return None


def _with_suffix(folder: Path, ident: str, suffixes: tuple[str, ...]) -> Path | None:
    """``folder/ident`` itself, or ``folder/ident.<suffix>`` for a known suffix."""
    exact = folder / ident
    if exact.is_file():
        return exact
    parent, stem = exact.parent, exact.name
    try:
        found = sorted(p for p in parent.iterdir()
                       if p.name.startswith(stem) and p.stem == stem
                       and p.suffix.lower() in suffixes and p.is_file())
    except OSError:
        return None
    return found[0] if found else None


@dataclass
class _Line:
    number: str
    text: str | None
    references: list[str] = field(default_factory=list)


class _LineFile:
    """A ``.txt`` (a sample per line) or ``.jsonl`` file, indexed by id and line number,
    read by the text reader's own line parser (lines it could not use have no text)."""

    def __init__(self, path: Path) -> None:
        from genmetrics.io.text import read_lines

        self.by_id: dict[str, _Line] = {}
        self.by_number: dict[str, _Line] = {}
        for number, record in read_lines(path):
            line = _Line(str(number), record.text, record.references)
            self.by_number[line.number] = line
            if record.id is not None:
                self.by_id[record.id] = line

    def get(self, ident: str, number: str | None = None) -> _Line | None:
        if ident in self.by_id:
            return self.by_id[ident]
        return self.by_number.get(number or ident)


class SampleFinder:
    """Locates the sample and the reference(s) of a per-sample id of one scorecard."""

    def __init__(self, modality: str, inputs: dict[str, Any], bases: list[Path]) -> None:
        self.modality = modality
        self.bases = bases
        samples = inputs.get("samples", {}) if isinstance(inputs, dict) else {}
        given = samples.get("path") if isinstance(samples, dict) else None
        self.samples_label = given if isinstance(given, str) else None
        self.samples = _resolve(given, bases) if isinstance(given, str) else None
        reference = inputs.get("reference", {}) if isinstance(inputs, dict) else {}
        paths = reference.get("path") if isinstance(reference, dict) else None
        paths = [paths] if isinstance(paths, str) else paths if isinstance(paths, list) else []
        self.inline = any(isinstance(p, str) and p.endswith(INLINE) for p in paths)
        self.reference_labels = [p for p in paths if isinstance(p, str) and not p.endswith(INLINE)]
        self.references = [_resolve(p, bases) for p in self.reference_labels]
        self.has_references = bool(paths)
        stats = inputs.get("reference_stats") if isinstance(inputs, dict) else None
        #: how many images the run's reference statistics held (an ADM batch's arr_0)
        self.stats_images = stats.get("images") if isinstance(stats, dict) else None
        self._lines: dict[Path, _LineFile | None] = {}
        self._arrays: dict[Path, Any] = {}
        #: image arrays of reference statistics, by (path, key): ImageArray or a problem
        self._image_arrays: dict[tuple[str, str], Any] = {}
        self._image_rows: dict[tuple[str, str], dict[int, Any]] = {}

    # -- helpers
    def _line_file(self, path: Path) -> _LineFile | None:
        if path not in self._lines:
            try:
                self._lines[path] = _LineFile(path)
            except OSError:
                self._lines[path] = None
        return self._lines[path]

    def _array_item(self, path: Path, ident: str, label: str) -> Item:
        name, _, index = ident.rpartition("#")
        if not index.isdigit():
            return Item(label, problem="file not found")
        if path not in self._arrays:
            try:
                from genmetrics.io.image import open_array

                self._arrays[path] = open_array(path)
            except Exception as exc:  # noqa: BLE001 - shown instead of the image
                self._arrays[path] = exc
        array = self._arrays[path]
        if isinstance(array, Exception):
            return Item(label, problem=f"cannot read: {array}")
        if int(index) >= len(array):
            return Item(label, problem="file not found")
        return Item(f"{path.name}#{index}", array=array[int(index)])

    def _suffixes(self) -> tuple[str, ...]:
        # the readers' own lists (imported here: they load numpy)
        if self.modality == "image":
            from genmetrics.io.image import IMAGE_SUFFIXES

            return IMAGE_SUFFIXES
        from genmetrics.io.audio import AUDIO_SUFFIXES

        return AUDIO_SUFFIXES

    def _in(self, root: Path | None, given: str | None, ident: str) -> Item:
        """The item of ``ident`` under one input path (folder, line or array file)."""
        label = f"{given}/{ident}" if given else ident
        if root is None:
            return Item(label, problem="file not found")
        if root.is_dir():
            if self.modality == "text":
                path = root / ident
                path = path if path.is_file() else None
            else:
                path = _with_suffix(root, ident, self._suffixes())
            if path is None:
                return Item(label, problem="file not found")
            return self._read(Item(label, path=path))
        from genmetrics.io.image import ARRAY_SUFFIXES

        if root.suffix.lower() in ARRAY_SUFFIXES:
            return self._array_item(root, ident, label)
        if self.modality == "text":
            lines = self._line_file(root)
            line = lines.get(ident) if lines else None
            if line is None or line.text is None:
                return Item(f"{given}:{ident}", problem="file not found")
            return Item(f"{given}:{line.number}", text=line.text)
        return Item(label, problem="file not found")

    def _read(self, item: Item) -> Item:
        if self.modality == "text" and item.path is not None:
            from genmetrics.io.text import strip_bom  # as scoring reads it

            try:
                item.text = strip_bom(item.path.read_bytes().decode("utf-8", "replace"))
            except OSError as exc:
                item.problem = f"cannot read: {exc.strerror or exc}"
        return item

    # -- public
    def sample(self, ident: str) -> Item:
        return self._in(self.samples, self.samples_label, ident)

    def reference_item(self, ident: str) -> Item:
        """The image of the reference distribution named ``ident`` (an id of the scorecard's
        ``per_sample.nearest_reference``: a file of the reference folder, without suffix,
        or ``name.npz#index``), not the paired reference of a sample; with several
        reference folders, the first that has it."""
        if not self.references:
            return Item(ident, problem="the scorecard names no reference folder")
        items = [self._in(root, given, ident)
                 for root, given in zip(self.references, self.reference_labels, strict=True)]
        return next((item for item in items if not item.problem), items[0])

    def _image_array(self, images: dict[str, Any]) -> Any:
        """The :class:`~genmetrics.reference_stats.ImageArray` of a ``{"path", "array"}``
        entry of ``per_sample.nearest_reference``, or why it cannot be read (a string)."""
        given, key = images.get("path"), images.get("array")
        if not isinstance(given, str) or not isinstance(key, str):
            return "the scorecard does not say where the reference images are"
        if (given, key) not in self._image_arrays:
            path = _resolve(given, self.bases)
            found: Any = "file not found"
            if path is not None:
                from genmetrics.reference_stats import ImageArray

                try:
                    found = ImageArray.open(path, key)
                except Exception as exc:  # noqa: BLE001 - shown instead of the image
                    found = f"cannot read: {exc}"
            if not isinstance(found, str) and isinstance(self.stats_images, int) and \
                    found.count != self.stats_images:
                found = (f"{given} changed since the run: {key} holds {found.count} images, "
                         f"the run's {self.stats_images}")
            self._image_arrays[given, key] = found
        return self._image_arrays[given, key]

    def prefetch_rows(self, images: dict[str, Any], rows: list[Any]) -> None:
        """Read the images of ``rows`` of a reference statistics array in one pass (the
        report shows a few rows of what may be a file of gigabytes)."""
        array = self._image_array(images)
        if isinstance(array, str):
            return
        cached = self._image_rows.setdefault((images["path"], images["array"]), {})
        wanted = [r for r in rows if isinstance(r, int) and r not in cached]
        if wanted:
            try:
                cached.update(array.rows(wanted))
            except Exception as exc:  # noqa: BLE001 - every row is shown as unreadable
                self._image_arrays[images["path"], images["array"]] = f"cannot read: {exc}"

    def reference_row(self, images: dict[str, Any], row: int) -> Item:
        """Row ``row`` of the images of reference statistics (``{"path", "array"}``, as
        ``per_sample.nearest_reference`` names them: an ADM reference batch's ``arr_0``),
        read without loading the whole array."""
        given, key = images.get("path"), images.get("array")
        label = f"{Path(str(given)).name} {key}[{row}]"
        self.prefetch_rows(images, [row])
        array = self._image_array(images)
        if isinstance(array, str):
            return Item(label, problem=array)
        found = self._image_rows.get((str(given), str(key)), {}).get(row)
        if found is None:
            return Item(label, problem=f"no row {row} in {key} ({array.count} images)")
        return Item(label, array=found)

    def references_of(self, ident: str) -> list[Item]:
        """Every reference of ``ident`` (text may have several); ``[]`` without references."""
        if not self.has_references:
            return []
        items: list[Item] = []
        sample_line = None
        if self.modality == "text" and self.samples is not None and self.samples.is_file():
            lines = self._line_file(self.samples)
            sample_line = lines.get(ident) if lines else None
        if self.inline and sample_line is not None:
            items += [Item(f"{self.samples_label}:{sample_line.number} (inline)", text=t)
                      for t in sample_line.references]
        for root, given in zip(self.references, self.reference_labels, strict=True):
            if self.modality == "text" and root is not None and root.is_dir():
                items += self._text_reference_sets(root, given, ident)
            elif self.modality == "text" and root is not None and root.is_file():
                lines = self._line_file(root)
                number = sample_line.number if sample_line is not None else None
                line = lines.get(ident, number) if lines else None
                if line is None:
                    items.append(Item(f"{given}:{ident}", problem="file not found"))
                    continue
                items += [Item(f"{given}:{line.number}", text=t) for t in line.references]
                if line.text is not None:
                    items.append(Item(f"{given}:{line.number}", text=line.text))
            else:
                items.append(self._in(root, given, ident))
        return items or [Item(ident, problem="file not found")]

    def _text_reference_sets(self, root: Path, given: str, ident: str) -> list[Item]:
        """A text reference folder is one set, or holds one set per sub-folder."""
        if (root / ident).is_file():
            return [self._read(Item(f"{given}/{ident}", path=root / ident))]
        try:
            subs = sorted(p for p in root.iterdir() if p.is_dir() and (p / ident).is_file())
        except OSError:
            subs = []
        if not subs:
            return [Item(f"{given}/{ident}", problem="file not found")]
        return [self._read(Item(f"{given}/{s.name}/{ident}", path=s / ident)) for s in subs]


# ------------------------------------------------------------------ showing items


def missing_html(item: Item) -> str:
    return f'<span class="missing" title="{esc(item.label)}">{esc(item.problem)}</span>'


def _rgb(item: Item) -> Any:
    """The item's pixels as an RGB ``numpy`` array, decoded as they were scored (16-bit
    PNGs scaled, alpha dropped); raise OSError/ValueError."""
    import numpy as np

    from genmetrics.io.image import array_to_rgb, decode_rgb

    if item.array is not None:
        return array_to_rgb(np.asarray(item.array))
    assert item.path is not None
    return decode_rgb(item.path)


def _thumb_tag(rgb: Any, title: str, media: MediaStore) -> str:
    """A PNG thumbnail (longer side at most :data:`THUMB`), shown :data:`THUMB` wide/high."""
    from PIL import Image

    img = Image.fromarray(rgb)
    w, h = img.size
    scale = THUMB / max(w, h)
    if scale < 1:
        img.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    shown_w, shown_h = max(1, round(w * scale)), max(1, round(h * scale))
    return media.picture(buf.getvalue(), shown_w, shown_h, title,
                         "thumb px" if scale > 1 else "thumb")


def images_html(sample: Item, reference: Item | None, media: MediaStore, *,
                reference_caption: str = "reference", diff: bool = True,
                note: str = "") -> str:
    """Sample thumbnail, its reference beside it (captioned ``reference_caption``, HTML)
    and, with ``diff``, their amplified difference; ``note``: the HTML of one more cell
    (e.g. what stands in for a reference that has no image)."""
    import numpy as np

    cells, pixels = [], []
    for caption, item in (("sample", sample), (reference_caption, reference)):
        if item is None:
            continue
        if item.problem:
            cells.append(f"<div>{missing_html(item)}<br>{caption}</div>")
            pixels.append(None)
            continue
        try:
            rgb = _rgb(item)
        except Exception as exc:  # noqa: BLE001 - an unreadable image is shown as such
            cells.append(f"<div>{missing_html(Item(item.label, problem=f'cannot read: {exc}'))}"
                         f"<br>{caption}</div>")
            pixels.append(None)
            continue
        pixels.append(rgb)
        cells.append(f"<div>{_thumb_tag(rgb, item.label, media)}{caption}</div>")
    if diff and len(pixels) == 2 and all(p is not None for p in pixels) and \
            pixels[0].shape == pixels[1].shape:
        delta = np.abs(pixels[0].astype(np.int16) - pixels[1].astype(np.int16)).mean(axis=2)
        amplified = np.clip(delta * 4, 0, 255).astype(np.uint8)
        gray = np.repeat(amplified[:, :, None], 3, axis=2)
        cells.append(f"<div>{_thumb_tag(gray, 'absolute difference x4', media)}"
                     "|difference| ×4</div>")
    if note:
        cells.append(f'<div class="note-cell">{note}</div>')
    return f'<div class="pair">{"".join(cells)}</div>'


def _audio_tag(item: Item, media: MediaStore) -> str:
    import numpy as np
    import soundfile as sf

    assert item.path is not None
    try:
        with sf.SoundFile(item.path) as fh:
            rate, total = fh.samplerate, fh.frames
            data = fh.read(frames=min(total, int(AUDIO_SECONDS * rate)), dtype="float64",
                           always_2d=True)
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types
        return missing_html(Item(item.label, problem=f"cannot read: {exc}"))
    mono = data.mean(axis=1)
    # durations at the file's own rate, before the player's copy is resampled
    seconds = total / rate if rate else 0.0
    note = f"first {AUDIO_SECONDS:g} s of {seconds:.1f} s" if total > len(data) else \
        f"{seconds:.1f} s"
    if rate > AUDIO_RATE:
        from genmetrics.io.audio import resample

        mono, rate = resample(mono, rate, AUDIO_RATE), AUDIO_RATE
    picture = _spectrogram_tag(mono, rate, item.label, media)
    buf = io.BytesIO()
    sf.write(buf, np.clip(mono, -1, 1), rate, format="WAV", subtype="PCM_16")
    key = media.add(buf.getvalue(), "audio/wav")
    return (f'{picture}<audio controls preload="none" data-media="{key}" '
            f'title="{esc(item.label)}"></audio><span>{esc(note)}</span>')


def _spectrogram_tag(mono: Any, rate: int, title: str, media: MediaStore) -> str:
    """A small log-power spectrogram (0 to rate/2, -90..0 dB on one fixed scale, so a
    sample and its reference compare), as a picture of ``media``."""
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image
    from scipy.signal import spectrogram

    if len(mono) < 32:
        return ""
    window = min(512, 2 ** int(np.log2(len(mono))))
    _, _, power = spectrogram(mono, fs=rate, nperseg=window, noverlap=window * 3 // 4,
                              scaling="spectrum")
    level = np.clip((10 * np.log10(power + 1e-12) + 90) / 90, 0, 1)[::-1]
    rgb = (colormaps["magma"](level)[:, :, :3] * 255).astype(np.uint8)
    img = Image.fromarray(rgb).resize((260, 64), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    label = f"spectrogram 0-{rate / 2000:g} kHz"
    return media.picture(buf.getvalue(), 260, 64, f"{title}: {label}", "spec")


def audio_html(sample: Item, reference: Item | None, media: MediaStore) -> str:
    """Players for the sample and its reference (mono, first seconds)."""
    cells = []
    for caption, item in (("sample", sample), ("reference", reference)):
        if item is None:
            continue
        body = missing_html(item) if item.problem else _audio_tag(item, media)
        cells.append(f'<div class="audio">{caption}: {esc(item.label)}<br>{body}</div>')
    return f'<div class="pair">{"".join(cells)}</div>'


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + " …"


def text_html(sample: Item, references: list[Item], diff: bool) -> str:
    """Output, reference(s) and (``diff``) the word diff against the closest reference."""
    rows = []

    def row(label: str, body: str) -> None:
        rows.append(f'<div class="label">{esc(label)}</div><div class="body">{body}</div>')

    row("output", missing_html(sample) if sample.problem else esc(_clip(sample.text or "")))
    readable = [r for r in references if not r.problem and r.text is not None]
    for i, ref in enumerate(references):
        label = "reference" if len(references) == 1 else f"reference {i + 1}"
        row(label, missing_html(ref) if ref.problem else esc(_clip(ref.text or "")))
    if diff and readable and not sample.problem and sample.text is not None:
        hyp = _clip(sample.text)
        texts = [_clip(r.text or "") for r in readable]
        best = closest(texts, hyp) if len(texts) > 1 else 0
        which = references.index(readable[best]) + 1
        label = "word diff" if len(texts) == 1 else f"diff vs ref {which}"
        row(label, word_diff(texts[best], hyp))
    return f'<div class="textrow">{"".join(rows)}</div>'
