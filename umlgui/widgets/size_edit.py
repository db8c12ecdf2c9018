"""A size entry: a number and a unit (KiB, MiB, GiB, TiB) that together give bytes.

    edit = SizeEdit(minimum=16 << 20, maximum=64 << 30)
    edit.setValue(128 << 20)          # shows "128" "MiB"
    edit.valueChanged.connect(...)    # bytes
    edit.value()                      # bytes

The unit follows the value (1G shows as 1 GiB, 1536M as 1536 MiB) and the user may switch it;
switching converts the number so the size stays the same.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QWidget

UNITS: tuple[tuple[str, int], ...] = (("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30),
                                      ("TiB", 1 << 40))
# Whole numbers in KiB and MiB; GiB and TiB allow fractions (1.5 GiB) rounded to whole MiB.
_DECIMALS = {"KiB": 0, "MiB": 0, "GiB": 2, "TiB": 3}


class SizeEdit(QWidget):
    valueChanged = Signal(object)      # bytes; sizes pass 2 GiB, beyond a C int

    def __init__(self, parent: QWidget | None = None, minimum: int = 0, maximum: int = 1 << 40,
                 units: tuple[str, ...] = ("MiB", "GiB")):
        super().__init__(parent)
        self._minimum, self._maximum = minimum, maximum
        self._bytes = minimum
        self.number = QDoubleSpinBox(self)
        self.number.setObjectName("sizeNumber")
        self.number.setKeyboardTracking(False)
        self.unit = QComboBox(self)
        self.unit.setObjectName("sizeUnit")
        for label, factor in UNITS:
            if label in units:
                self.unit.addItem(label, factor)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.number, 1)
        layout.addWidget(self.unit)
        self.number.valueChanged.connect(self._number_changed)
        self.unit.currentIndexChanged.connect(self._unit_changed)
        self._show(self._bytes)

    # --- public --------------------------------------------------------------------------

    def value(self) -> int:
        return self._bytes

    def setValue(self, size: int) -> None:
        """Show `size` bytes in the largest unit that holds it exactly."""
        self._set_unit(self._best_unit(size))
        self._show(size)
        self._store(size)

    def setRange(self, minimum: int, maximum: int) -> None:
        self._minimum, self._maximum = minimum, maximum
        self._show(self._bytes)

    def minimum(self) -> int:
        return self._minimum

    def maximum(self) -> int:
        return self._maximum

    # --- internals -----------------------------------------------------------------------

    def _factor(self) -> int:
        return int(self.unit.currentData())

    def _best_unit(self, size: int) -> int:
        best = 0
        for index in range(self.unit.count()):
            if size % int(self.unit.itemData(index)) == 0:
                best = index
        return best

    def _set_unit(self, index: int) -> None:
        self.unit.blockSignals(True)
        self.unit.setCurrentIndex(index)
        self.unit.blockSignals(False)

    def _show(self, size: int) -> None:
        """Put `size` into the spin box in the current unit without emitting anything."""
        factor, label = self._factor(), self.unit.currentText()
        self.number.blockSignals(True)
        self.number.setDecimals(_DECIMALS[label])
        # the spin box's own range stays wide so out-of-range sizes can be typed and reported
        self.number.setRange(0, max(self._maximum, size) / factor)
        self.number.setSingleStep(1 if _DECIMALS[label] == 0 else 0.25)
        self.number.setValue(size / factor)
        self.number.blockSignals(False)

    def _store(self, size: int) -> None:
        if size != self._bytes:
            self._bytes = size
            self.valueChanged.emit(size)

    def _number_changed(self, number: float) -> None:
        factor = self._factor()
        size = round(number * factor)
        if factor > 1 << 20:
            size = round(size / (1 << 20)) << 20      # fractions of a GiB become whole MiB
        self._store(size)

    def _unit_changed(self, _index: int) -> None:
        self._show(self._bytes)
