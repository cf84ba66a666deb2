"""A tiny dependency-free loss plot (QPainter): training and validation loss against step."""

import math

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

TRAIN_COLOUR = QColor(80, 160, 255)
VAL_COLOUR = QColor(255, 150, 40)


class LossPlot(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.clear()

    def clear(self) -> None:
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []
        self.total_steps = 1
        self.update()

    def add(
        self,
        step: int,
        loss: float | None = None,
        val_loss: float | None = None,
        total: int | None = None,
    ) -> None:
        if total:
            self.total_steps = max(1, int(total))
        if loss is not None and math.isfinite(loss):
            self.train.append((step, float(loss)))
        if (
            val_loss is not None
            and math.isfinite(val_loss)
            and (not self.val or self.val[-1][1] != val_loss)
        ):
            self.val.append((step, float(val_loss)))
        self.update()

    def paintEvent(self, event):  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        left, right, top, bottom = 48, 8, 8, 18
        painter.fillRect(0, 0, w, h, QColor(38, 41, 48))
        painter.setPen(QPen(QColor(150, 150, 150)))
        painter.drawRect(left, top, w - left - right, h - top - bottom)
        values = [v for _, v in self.train] + [v for _, v in self.val]
        if not values:
            painter.drawText(left + 6, top + 16, "loss appears here while training")
            painter.end()
            return
        lo, hi = min(values), max(values)
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5

        def point(step, value):
            x = left + (w - left - right) * step / self.total_steps
            y = top + (h - top - bottom) * (hi - value) / (hi - lo)
            return QPointF(x, y)

        for series, colour in ((self.train, TRAIN_COLOUR), (self.val, VAL_COLOUR)):
            painter.setPen(QPen(colour, 1.5))
            for (s0, v0), (s1, v1) in zip(series, series[1:]):
                painter.drawLine(point(s0, v0), point(s1, v1))
            if len(series) == 1:
                painter.drawEllipse(point(*series[0]), 2, 2)
        painter.setPen(QPen(QColor(200, 200, 200)))
        painter.drawText(2, top + 10, f"{hi:.3g}")
        painter.drawText(2, h - bottom, f"{lo:.3g}")
        painter.drawText(left, h - 4, "train")
        painter.setPen(QPen(VAL_COLOUR))
        painter.drawText(left + 40, h - 4, "validation")
        painter.setPen(QPen(QColor(200, 200, 200)))
        painter.drawText(w - right - 90, h - 4, f"step / {self.total_steps}")
        painter.setPen(Qt.PenStyle.NoPen)
        painter.end()
