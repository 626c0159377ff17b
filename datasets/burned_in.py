"""Burned-in text found in the pixels. Images of the kinds that often carry text drawn into
them (ultrasound, secondary captures, endoscopy …) are read with OCR (Tesseract, through
pytesseract) before they may leave: no text found, they go out and the check is recorded;
text found, its boxes are blacked out in every frame (the dataset's choice) or the study is
left out. An image that cannot be decoded cannot be checked, so it is left out."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pydicom
import pytesseract
from PIL import Image

# A word counts when Tesseract is this sure of it and it has this many letters or digits:
# below that, ultrasound speckle reads as "text" everywhere.
MIN_CONFIDENCE = 60
MIN_CHARACTERS = 2
PADDING = 3  # pixels added around each word before it is blacked out


class PixelsUnreadable(Exception):
    """The pixel data could not be decoded (a missing codec, a damaged file)."""


@dataclass(frozen=True)
class TextBox:
    left: int
    top: int
    width: int
    height: int
    text: str


def find_text(ds: pydicom.Dataset) -> list[TextBox]:
    """The words Tesseract reads in the image (first, middle and last frame of a loop), in
    the image's own pixel coordinates."""
    frames = _frames(ds)
    picked = sorted({0, len(frames) // 2, len(frames) - 1})
    found: list[TextBox] = []
    for index in picked:
        found += _words(_greyscale(frames[index]))
    return found


ROUNDS = 3  # blacking out words can let fainter ones nearby be read: look again


def boxes_to_black_out(ds: pydicom.Dataset) -> tuple[list[TextBox], bool]:
    """Every box to black out so that OCR reads nothing more, found round by round on a
    copy; and whether the image is then clean (False: text still read after the rounds)."""
    boxes = find_text(ds)
    if not boxes:
        return [], True
    work = copy.deepcopy(ds)
    for _ in range(ROUNDS):
        redact(work, boxes)
        more = find_text(work)
        if not more:
            return boxes, True
        boxes = boxes + more
    return boxes, False


def redact(ds: pydicom.Dataset, boxes: list[TextBox]) -> int:
    """Black out ``boxes`` (padded) in every frame and store the pixels uncompressed, with
    Burned In Annotation set to NO only now that the text is gone. Returns the regions."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is not None and syntax.is_transfer_syntax and not syntax.is_little_endian:
        # pydicom writes pixels little endian only, and will not turn a big endian file
        # into a little endian one: such an image cannot be blacked out, so it is left out.
        raise PixelsUnreadable("big endian pixel data cannot be rewritten to black out "
                               "the text")
    pixels = np.array(_decoded(ds), copy=True)
    multi = int(ds.get("NumberOfFrames", 1) or 1) > 1
    rows, columns = int(ds.Rows), int(ds.Columns)
    for box in boxes:
        top, left = max(0, box.top - PADDING), max(0, box.left - PADDING)
        bottom = min(rows, box.top + box.height + PADDING)
        right = min(columns, box.left + box.width + PADDING)
        if multi:
            pixels[:, top:bottom, left:right] = 0
        else:
            pixels[top:bottom, left:right] = 0
    photometric = "RGB" if pixels.shape[-1] == 3 and int(ds.SamplesPerPixel) == 3 else \
        str(ds.PhotometricInterpretation)
    try:
        ds.set_pixel_data(pixels, photometric_interpretation=photometric,
                          bits_stored=int(ds.BitsStored))
    except (ValueError, NotImplementedError) as exc:
        # pydicom writes 8 and 16 bit pixels of the usual photometric interpretations
        # only (32 bit RGB, for one, is refused): what it cannot write is left out.
        raise PixelsUnreadable(f"the pixels cannot be rewritten to black out the text "
                               f"({type(exc).__name__}: {str(exc)[:100]})") from exc
    ds.BurnedInAnnotation = "NO"
    return len(boxes)


def _decoded(ds: pydicom.Dataset) -> np.ndarray:
    try:
        return ds.pixel_array
    except Exception as exc:  # pydicom raises RuntimeError, ValueError, NotImplementedError…
        raise PixelsUnreadable(f"{type(exc).__name__}: {str(exc)[:120]}") from exc


def _frames(ds: pydicom.Dataset) -> list[np.ndarray]:
    pixels = _decoded(ds)
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        return list(pixels)
    return [pixels]


def _greyscale(frame: np.ndarray) -> Image.Image:
    eight_bit = frame.dtype == np.uint8
    if frame.ndim == 3:  # colour (RGB after decoding): luminance
        frame = frame[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114])
    frame = frame.astype(np.float32)
    if eight_bit:
        # Shown as stored: stretching would turn a dark field's speckle into bright "ink".
        return Image.fromarray(frame.clip(0, 255).astype(np.uint8))
    low, high = float(frame.min()), float(frame.max())
    scaled = np.zeros_like(frame) if high <= low else (frame - low) * (255.0 / (high - low))
    return Image.fromarray(scaled.astype(np.uint8))


# Annotations are drawn bright on dark images; a binarised copy (bright marks black on
# white) strips the speckle that hides small text from Tesseract.
BRIGHT = 150


def _words(image: Image.Image) -> list[TextBox]:
    # Small images are enlarged: Tesseract reads text about 20 pixels high best.
    factor = 2 if max(image.size) < 1000 else 1
    if factor > 1:
        image = image.resize((image.width * factor, image.height * factor), Image.LANCZOS)
    binarised = image.point(lambda value: 0 if value > BRIGHT else 255)
    found: dict[tuple[int, int], TextBox] = {}
    for variant in (binarised, image):  # bright text, then text of any shade
        for box in _read(variant, factor):
            found.setdefault((box.left // 8, box.top // 8), box)
    return list(found.values())


def _read(image: Image.Image, factor: int) -> list[TextBox]:
    try:
        data = pytesseract.image_to_data(image, config="--psm 11",
                                         output_type=pytesseract.Output.DICT)
    except (pytesseract.TesseractNotFoundError, pytesseract.TesseractError) as exc:
        # No OCR, no check: the study stays in only if it is checked.
        raise PixelsUnreadable(f"the OCR engine could not run ({type(exc).__name__}); "
                               "install tesseract-ocr") from exc
    words = []
    for n, text in enumerate(data["text"]):
        text = (text or "").strip()
        if (float(data["conf"][n]) >= MIN_CONFIDENCE
                and sum(c.isalnum() for c in text) >= MIN_CHARACTERS):
            words.append(TextBox(left=data["left"][n] // factor, top=data["top"][n] // factor,
                                 width=-(-data["width"][n] // factor),
                                 height=-(-data["height"][n] // factor), text=text))
    return words


@dataclass(frozen=True)
class PixelCheck:
    """What the check of a study's images found: a reason to leave it out, or the boxes to
    black out per file (none when no text was found), and a line for the record."""

    refused: str
    boxes: dict[str, list[TextBox]]
    summary: str


def study_pixel_check(paths: list[str], *, redact_text: bool,
                      header_says_text: bool) -> PixelCheck:
    """Read every image of the study for burned-in text."""
    boxes: dict[str, list[TextBox]] = {}
    for path in paths:
        try:
            ds = pydicom.dcmread(path)
            found, clean = (boxes_to_black_out(ds) if redact_text
                            else (find_text(ds), True))
        except PixelsUnreadable as exc:
            return PixelCheck(refused="pixels could not be read to look for burned-in "
                                      f"text ({exc})", boxes={}, summary="")
        if not clean:
            return PixelCheck(refused="burned-in text still read after blacking out "
                                      f"{ROUNDS} times", boxes={}, summary="")
        if found:
            boxes[path] = found
    words = sum(len(found) for found in boxes.values())
    if boxes and not redact_text:
        return PixelCheck(refused=f"burned-in text found in the pixels ({words} words in "
                                  f"{len(boxes)} images)", boxes={}, summary="")
    if header_says_text and not boxes:
        return PixelCheck(refused="the header says text is burned in, but none was found "
                                  "to black out", boxes={}, summary="")
    summary = (f"burned-in text blacked out ({words} words in {len(boxes)} images)" if boxes
               else "pixels checked for burned-in text: none found")
    return PixelCheck(refused="", boxes=boxes, summary=summary)
