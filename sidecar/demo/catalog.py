"""A small sample catalog: products with a title, a description, a color and a picture.

The pictures are drawn here (a colored product silhouette on white), so the catalog needs no
download and its images are real PNG files the worker reads from a local media root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

COLORS = {
    "red": (210, 30, 40),
    "blue": (30, 70, 200),
    "green": (30, 150, 60),
    "black": (25, 25, 25),
    "yellow": (240, 200, 30),
}

PRODUCTS = [
    ("red running shoes", "Light road running shoes with a cushioned sole.", "red", "shoe"),
    ("blue running shoes", "Neutral running shoes for daily training.", "blue", "shoe"),
    ("trail running shoes", "Grippy shoes for muddy trails, black and durable.", "black", "shoe"),
    ("red leather boots", "Waterproof boots for winter walks.", "red", "shoe"),
    ("running socks", "Cushioned socks that keep runners' feet dry.", "green", "sock"),
    ("winter jacket", "A warm padded jacket for cold days.", "black", "jacket"),
    ("blue rain jacket", "A light waterproof shell that packs small.", "blue", "jacket"),
    ("yellow rain jacket", "High-visibility rain jacket for cycling.", "yellow", "jacket"),
    ("red wool scarf", "A warm scarf knitted from soft wool.", "red", "scarf"),
    ("green wool hat", "A warm beanie for winter runs.", "green", "hat"),
    ("blue water bottle", "A 750 ml insulated bottle for runs and rides.", "blue", "bottle"),
    ("red water bottle", "A squeezable bottle for running vests.", "red", "bottle"),
    ("running cap", "A light cap that keeps the sun out of your eyes.", "yellow", "hat"),
    ("running shorts", "Breathable shorts with a key pocket.", "black", "shorts"),
    ("shoe cleaning kit", "Brush and cleaner that keep running shoes like new.", "green", "kit"),
    ("winter running gloves", "Touch-screen gloves for cold morning runs.", "black", "gloves"),
]


def _draw(kind: str, color: tuple[int, int, int], path: Path) -> None:
    image = Image.new("RGB", (224, 224), (255, 255, 255))
    pen = ImageDraw.Draw(image)
    shapes = {
        "shoe": [(30, 120), (150, 120), (200, 160), (200, 180), (30, 180)],
        "jacket": [(60, 40), (164, 40), (200, 90), (180, 200), (44, 200), (24, 90)],
        "bottle": [(95, 30), (129, 30), (140, 70), (140, 200), (84, 200), (84, 70)],
    }
    if kind in shapes:
        pen.polygon(shapes[kind], fill=color)
    else:
        pen.ellipse((40, 40, 184, 184), fill=color)
    image.save(path, format="PNG")


def build_catalog(images_dir: Path) -> list[dict[str, Any]]:
    """The catalog's documents; their images are written into ``images_dir``."""
    images_dir.mkdir(parents=True, exist_ok=True)
    docs = []
    for i, (title, description, color, kind) in enumerate(PRODUCTS):
        path = images_dir / f"product-{i:02d}.png"
        if not path.is_file():
            _draw(kind, COLORS[color], path)
        docs.append(
            {
                "title": title,
                "description": description,
                "color": color,
                "image": str(path),
                "tags": [kind, color],
            }
        )
    return docs
