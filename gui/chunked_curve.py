"""A growing pyqtgraph curve made of fixed-size chunks: the per-tick cost stays flat."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg

#: Points per chunk: a completed chunk becomes a static item that is never updated again.
CHUNK_SIZE = 4096


def _without_clipping(item: pg.GraphicsObject, action: Any) -> None:
    """Run `action` with the item's clip-to-view off (pyqtgraph 0.14 workaround).

    While Qt moves an item into or out of a scene, pyqtgraph asks a clip-to-view item to
    recompute its display data against the GraphicsView, which has no `autoRangeEnabled`
    (AttributeError). PlotItem.addItem re-applies the plot's clip mode afterwards.
    """
    opts = getattr(item, "opts", None)
    saved = None
    if isinstance(opts, dict) and "clipToView" in opts:
        saved, opts["clipToView"] = opts["clipToView"], False
    try:
        action()
    finally:
        if saved is not None and not opts["clipToView"]:
            opts["clipToView"] = saved


def add_item(plot: pg.PlotItem, item: pg.GraphicsObject, ignore_bounds: bool = False) -> None:
    """Add an item to a plot (clip-to-view and peak downsampling come from the plot)."""
    _without_clipping(item, lambda: plot.addItem(item, ignoreBounds=ignore_bounds))


def remove_item(plot: pg.PlotItem, item: pg.GraphicsObject) -> None:
    """Remove an item from a plot."""
    _without_clipping(item, lambda: plot.removeItem(item))


class ChunkedCurve:
    """A growing curve made of fixed-size chunks; only the last chunk is ever updated.

    Completed chunks hold 1 + `chunk_size` points (the first repeats the previous chunk's
    last point, so the line has no gap) and are drawn with min/max ("peak") downsampling by
    a power of two chosen from the view: `chunk_size` is a multiple of it, so the only point
    a bin can leave out is the last one, which the next chunk draws again. pyqtgraph's own
    auto-downsampling drops up to ds-1 trailing points instead (a final spike would vanish).
    The live chunk is drawn at full resolution, so the newest sample is always on screen.
    """

    def __init__(self, plot: pg.PlotItem, pen: Any, chunk_size: int = CHUNK_SIZE,
                 z: float = 0.0) -> None:
        if chunk_size & (chunk_size - 1):
            raise ValueError("chunk_size must be a power of two")
        self.plot = plot
        self.pen = pen
        self.chunk_size = chunk_size
        self.z = z
        self.items: list[pg.PlotDataItem] = []
        self.attached = True
        self.count = 0
        #: Downsampling factor of the completed chunks (a power of two).
        self.ds = 1
        self._first_x = math.nan
        self._last_x = math.nan
        #: Extremes of the points appended so far (for the charts' own y-scaling).
        self.y_min = math.inf
        self.y_max = -math.inf
        self.y_min_positive = math.inf
        self._x = np.empty(0)
        self._y = np.empty(0)
        self._n = 0
        self._live: pg.PlotDataItem | None = None

    def _configure(self, item: pg.PlotDataItem) -> None:
        # after PlotItem.addItem, which imposes the plot's own downsampling mode
        item.setClipToView(True)
        item.setDynamicRangeLimit(None)  # the charts keep every point in view themselves
        item.setDownsampling(ds=1 if item is self._live else self.ds, auto=False,
                             method="peak")

    def _new_item(self) -> pg.PlotDataItem:
        item = pg.PlotDataItem(pen=self.pen, antialias=False)
        item.setSkipFiniteCheck(True)
        item.setZValue(self.z)
        self.items.append(item)
        self._live = item
        if self.attached:
            add_item(self.plot, item)
            self._configure(item)
        return item

    def append(self, x: np.ndarray, y: np.ndarray) -> None:
        """Append points (non-finite ones are dropped); touches only the last chunk."""
        keep = np.isfinite(x) & np.isfinite(y)
        if not keep.all():
            x, y = x[keep], y[keep]
        i, total = 0, len(x)
        if total:
            if math.isnan(self._first_x):
                self._first_x = float(x[0])
            self._last_x = float(x[-1])
            self.y_min = min(self.y_min, float(y.min()))
            self.y_max = max(self.y_max, float(y.max()))
            positive = y[y > 0]
            if len(positive):
                self.y_min_positive = min(self.y_min_positive, float(positive.min()))
        while i < total:
            if self._live is None:
                self._x = np.empty(self.chunk_size + 1)
                self._y = np.empty(self.chunk_size + 1)
                self._n = 0
                if self.items:  # start where the previous chunk ended, so the line is joined
                    last_x, last_y = self.items[-1].getOriginalDataset()
                    self._x[0], self._y[0] = last_x[-1], last_y[-1]
                    self._n = 1
                self._new_item()
            live = self._live
            take = min(self.chunk_size + 1 - self._n, total - i)
            self._x[self._n:self._n + take] = x[i:i + take]
            self._y[self._n:self._n + take] = y[i:i + take]
            self._n += take
            i += take
            self.count += take
            if self._n == self.chunk_size + 1:  # full: final data, then never touched again
                self._live = None
                live.setData(self._x, self._y)
                if self.ds != 1:
                    live.setDownsampling(ds=self.ds, auto=False, method="peak")
        if self._live is not None and total:
            self._live.setData(self._x[:self._n], self._y[:self._n])

    def set_density(self, pixels_per_unit: float) -> None:
        """Pick the completed chunks' downsampling for the view (about one bin per pixel)."""
        span = self._last_x - self._first_x
        if not (self.count > 1 and span > 0 and pixels_per_unit > 0):
            return
        points_per_pixel = self.count / (span * pixels_per_unit)
        ds = 1
        while ds * 2 <= min(points_per_pixel, self.chunk_size):
            ds *= 2
        if ds == self.ds:
            return
        self.ds = ds
        for item in self.items:
            if item is not self._live:
                item.setDownsampling(ds=ds, auto=False, method="peak")

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """All points (for tests and exports), chunk joints not repeated."""
        xs, ys = [], []
        for k, item in enumerate(self.items):
            x, y = item.getOriginalDataset()
            if x is None:
                continue
            start = 1 if k else 0
            xs.append(x[start:])
            ys.append(y[start:])
        if not xs:
            return np.empty(0), np.empty(0)
        return np.concatenate(xs), np.concatenate(ys)

    def set_pen(self, pen: Any) -> None:
        """Re-pen every chunk."""
        self.pen = pen
        for item in self.items:
            item.setPen(pen)

    def attach(self) -> None:
        """Show the curve on its plot."""
        if not self.attached:
            self.attached = True
            for item in self.items:
                add_item(self.plot, item)
                self._configure(item)

    def detach(self) -> None:
        """Take the curve off its plot (kept in memory)."""
        if self.attached:
            self.attached = False
            for item in self.items:
                remove_item(self.plot, item)
