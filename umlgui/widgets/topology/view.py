"""The canvas view and the palette: zoom, drops from the palette, and drawing links by dragging.

A link is drawn by dragging from one node to another with the Link tool on (Ctrl+L) or with
Shift held; the editor then asks which card and port to use. Everything else is the usual
QGraphicsView: rubber-band selection, Ctrl+click to add to it, Ctrl+wheel to zoom.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QMimeData, QPoint, QPointF, QLineF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QIcon, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QGraphicsLineItem, QGraphicsScene, QGraphicsView,
                               QListWidget, QListWidgetItem)

from umlgui.model import lab as labs
from umlgui.widgets.topology.items import GRID, KIND_COLORS, NodeItem

NODE_MIME = "application/x-umlgui-node"
MIN_ZOOM, MAX_ZOOM = 0.1, 5.0


class TopologyScene(QGraphicsScene):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.snap_to_grid = True
        self.setSceneRect(-2000, -2000, 4000, 4000)

    def drawBackground(self, painter: QPainter, rect) -> None:
        painter.fillRect(rect, QColor("#fbfbfc"))
        painter.setPen(QPen(QColor("#e6e8eb"), 0))
        left = int(rect.left() // GRID * GRID)
        top = int(rect.top() // GRID * GRID)
        step = int(GRID * 2)
        for x in range(left, int(rect.right()) + 1, step):
            painter.drawLine(x, rect.top(), x, rect.bottom())
        for y in range(top, int(rect.bottom()) + 1, step):
            painter.drawLine(rect.left(), y, rect.right(), y)


class TopologyView(QGraphicsView):
    node_dropped = Signal(str, str, QPointF)          # kind, template, scene position
    link_drawn = Signal(str, str, QPoint)             # from node, to node, global position
    node_activated = Signal(str)                      # double-click
    context_requested = Signal(object, QPoint)        # item under the mouse (or None), global pos
    moves_finished = Signal()                         # nodes may have been dragged
    zoom_changed = Signal(float)

    def __init__(self, scene: TopologyScene, parent=None):
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setAcceptDrops(True)
        self.link_mode = False
        self._link_from: NodeItem | None = None
        self._rubber_link: QGraphicsLineItem | None = None

    # --- zoom ---------------------------------------------------------------------------

    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, factor: float) -> None:
        factor = max(MIN_ZOOM, min(MAX_ZOOM, factor))
        self.resetTransform()
        self.scale(factor, factor)
        self.zoom_changed.emit(factor)

    def zoom_by(self, step: float) -> None:
        self.set_zoom(self.zoom() * step)

    def fit_all(self) -> None:
        items = self.scene().itemsBoundingRect()
        if items.isEmpty():
            self.set_zoom(1.0)
            return
        self.fitInView(items.adjusted(-40, -40, 40, 40), Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom() > 1.5:
            self.set_zoom(1.5)
        self.zoom_changed.emit(self.zoom())

    def wheelEvent(self, event) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1.15 if event.angleDelta().y() > 0 else 1 / 1.15)
            event.accept()
        else:
            super().wheelEvent(event)

    # --- drops from the palette -----------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasFormat(NODE_MIME):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasFormat(NODE_MIME):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event) -> None:
        if not event.mimeData().hasFormat(NODE_MIME):
            return super().dropEvent(event)
        kind, _, template = bytes(event.mimeData().data(NODE_MIME)).decode().partition(":")
        self.node_dropped.emit(kind, template, self.mapToScene(event.position().toPoint()))
        event.acceptProposedAction()

    # --- links, clicks, menus ---------------------------------------------------------------

    def node_at(self, view_pos: QPoint) -> NodeItem | None:
        for item in self.items(view_pos):
            if isinstance(item, NodeItem):
                return item
        return None

    def mousePressEvent(self, event) -> None:
        node = self.node_at(event.position().toPoint())
        linking = self.link_mode or event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        if event.button() == Qt.MouseButton.LeftButton and node is not None and linking:
            self._start_link(node)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._rubber_link is not None:
            start = self._link_from.pos()
            self._rubber_link.setLine(QLineF(start, self.mapToScene(event.position().toPoint())))
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._rubber_link is not None:
            target = self.node_at(event.position().toPoint())
            source = self._link_from
            self._end_link()
            if target is not None and target is not source:
                self.link_drawn.emit(source.name, target.name, event.globalPosition().toPoint())
            event.accept()
            return
        super().mouseReleaseEvent(event)
        if event.button() == Qt.MouseButton.LeftButton:
            self.moves_finished.emit()

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape and self._rubber_link is not None:
            self._end_link()
            return
        super().keyPressEvent(event)

    def _start_link(self, node: NodeItem) -> None:
        self._link_from = node
        self._rubber_link = QGraphicsLineItem(QLineF(node.pos(), node.pos()))
        self._rubber_link.setPen(QPen(QColor("#1a73e8"), 2, Qt.PenStyle.DashLine))
        self._rubber_link.setZValue(2)
        self.scene().addItem(self._rubber_link)

    def _end_link(self) -> None:
        if self._rubber_link is not None:
            self.scene().removeItem(self._rubber_link)
        self._rubber_link = None
        self._link_from = None

    def mouseDoubleClickEvent(self, event) -> None:
        node = self.node_at(event.position().toPoint())
        if node is not None:
            self.node_activated.emit(node.name)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event) -> None:
        position = event.pos()
        item = self.node_at(position)
        if item is None:
            item = next((i for i in self.items(position) if i.flags() & i.GraphicsItemFlag.ItemIsSelectable), None)
        # right-clicking a selected item keeps the selection (GNS3's rule); others select only it
        if item is not None and not item.isSelected():
            self.scene().clearSelection()
            item.setSelected(True)
        self.context_requested.emit(item, event.globalPos())


class Palette(QListWidget):
    """Node kinds to drag onto the canvas (double-click adds one in the middle)."""

    def __init__(self, templates: list[str], parent=None):
        super().__init__(parent)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setMaximumWidth(170)
        self.setObjectName("topologyPalette")
        for template in templates:
            self._add(f"Machine ({template})", labs.MACHINE, template,
                      f"A UML machine from the {template} template")
        self._add("Switch", labs.SWITCH, "", "An Ethernet switch: learns addresses, ports can be impaired")
        self._add("Hub", labs.HUB, "", "A hub: every frame goes to every port")
        self._add("Host", labs.HOST, "", "This computer, through a tap device on a switch")
        self._add("Internet", labs.INTERNET, "", "The outside world through user-mode NAT with DHCP (slirpvde, no root needed)")

    def _add(self, text: str, kind: str, template: str, tip: str) -> None:
        item = QListWidgetItem(_swatch(kind), text)
        item.setData(Qt.ItemDataRole.UserRole, f"{kind}:{template}")
        item.setToolTip(tip + " — drag it onto the canvas")
        self.addItem(item)

    def mimeData(self, items) -> QMimeData:
        data = QMimeData()
        if items:
            data.setData(NODE_MIME, QByteArray(items[0].data(Qt.ItemDataRole.UserRole).encode()))
        return data

    def mimeTypes(self) -> list[str]:
        return [NODE_MIME]

    def entry(self, kind: str, template: str = "") -> QListWidgetItem:
        for row in range(self.count()):
            if self.item(row).data(Qt.ItemDataRole.UserRole) == f"{kind}:{template}":
                return self.item(row)
        raise KeyError(kind)


def _swatch(kind: str) -> QIcon:
    pixmap = QPixmap(16, 16)
    pixmap.fill(QColor(KIND_COLORS.get(kind, "#ffffff")).darker(115))
    return QIcon(pixmap)
