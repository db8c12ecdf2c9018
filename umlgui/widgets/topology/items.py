"""What the canvas draws: a node per machine, switch, hub, host or Internet, a line per link.

Items are views of the lab model: they hold only the node or link key and what they show;
edits go through the editor's undo stack, never through the items.
"""

from __future__ import annotations

from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsObject, QStyle

from umlgui.model import lab as labs
from umlgui.worker import state as st

GRID = 20.0
NODE_W, NODE_H = 64.0, 48.0

STATE_COLORS = {
    st.STOPPED: "#9e9e9e", st.HALTED: "#9e9e9e", st.KILLED: "#9e9e9e",
    st.BOOTING: "#f2b705", st.REBOOTING: "#f2b705", st.HALTING: "#f2b705",
    st.RUNNING: "#2e9d4f", st.PAUSED: "#3b7dd8", st.CRASHED: "#d93025",
}
KIND_COLORS = {labs.MACHINE: "#e8eef7", labs.SWITCH: "#e6f2ea", labs.HUB: "#f4efe2",
               labs.HOST: "#efe8f5", labs.INTERNET: "#e3f1f8"}
STATE_WORDS = {st.STOPPED: "off", st.HALTED: "off", st.KILLED: "off (killed)"}


def state_word(state: str) -> str:
    return STATE_WORDS.get(state, state)


def snap(value: float) -> float:
    return round(value / GRID) * GRID


class NodeItem(QGraphicsObject):
    """One node: a shape for its kind, its name below, a state lamp in the corner."""

    def __init__(self, node: labs.Node):
        super().__init__()
        self.name = node.name
        self.kind = node.kind
        self.detail = ""
        self.state = st.STOPPED
        self.links: list[LinkItem] = []
        self.setFlags(QGraphicsItem.GraphicsItemFlag.ItemIsMovable
                      | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
                      | QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges)
        self.setAcceptHoverEvents(True)
        self.setZValue(1)
        self.update_from(node)

    def update_from(self, node: labs.Node) -> None:
        self.kind = node.kind
        if node.is_machine:
            self.detail = f"{node.memory >> 20}M {node.template}"
        elif node.has_ports:
            self.detail = f"{node.ports} ports"
        else:
            self.detail = "NAT + DHCP"
        self.setPos(node.x, node.y)
        self.setToolTip(f"{node.name}: {self.detail}")
        self.update()

    def set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.setToolTip(f"{self.name}: {self.detail} — {state_word(state)}")
            self.update()

    # --- geometry and painting ------------------------------------------------------------

    def boundingRect(self) -> QRectF:
        return QRectF(-NODE_W, -NODE_H / 2 - 4, NODE_W * 2, NODE_H + 42)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRect(QRectF(-NODE_W / 2, -NODE_H / 2, NODE_W, NODE_H))
        return path

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        state_color = QColor(STATE_COLORS.get(self.state, "#9e9e9e"))
        outline = QPen(QColor("#1a73e8") if selected else state_color.darker(130), 3 if selected else 2)
        painter.setPen(outline)
        painter.setBrush(QBrush(QColor(KIND_COLORS.get(self.kind, "#ffffff"))))
        body = QRectF(-NODE_W / 2, -NODE_H / 2, NODE_W, NODE_H)
        _SHAPES.get(self.kind, _draw_machine)(painter, body)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(state_color)
        painter.drawEllipse(QPointF(NODE_W / 2 - 7, -NODE_H / 2 + 7), 5, 5)
        painter.setPen(QColor("#202124"))
        font = QFont(painter.font())
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(QRectF(-NODE_W, NODE_H / 2 + 2, NODE_W * 2, 18),
                         Qt.AlignmentFlag.AlignCenter, self.name)
        font.setBold(False)
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        painter.setFont(font)
        painter.setPen(QColor("#5f6368"))
        painter.drawText(QRectF(-NODE_W, NODE_H / 2 + 18, NODE_W * 2, 14),
                         Qt.AlignmentFlag.AlignCenter, f"{self.detail} · {state_word(self.state)}")

    def itemChange(self, change, value):
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionChange:
            view_snaps = self.scene() is not None and getattr(self.scene(), "snap_to_grid", True)
            if view_snaps:
                return QPointF(snap(value.x()), snap(value.y()))
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged:
            for link in self.links:
                link.adjust()
        return super().itemChange(change, value)


def _draw_machine(painter: QPainter, body: QRectF) -> None:
    screen = body.adjusted(6, 4, -6, -14)
    painter.drawRoundedRect(body, 6, 6)
    painter.drawRect(screen)
    painter.drawLine(QPointF(body.center().x() - 10, body.bottom() - 7),
                     QPointF(body.center().x() + 10, body.bottom() - 7))


def _draw_switch(painter: QPainter, body: QRectF) -> None:
    box = body.adjusted(0, 10, 0, -10)
    painter.drawRoundedRect(box, 4, 4)
    for index in range(6):
        x = box.left() + 8 + index * 9
        painter.drawRect(QRectF(x, box.center().y() - 3, 6, 6))
    painter.drawLine(QPointF(box.left() + 10, box.top() - 6), QPointF(box.right() - 10, box.top() - 6))
    painter.drawLine(QPointF(box.left() + 10, box.bottom() + 6), QPointF(box.right() - 10, box.bottom() + 6))


def _draw_hub(painter: QPainter, body: QRectF) -> None:
    painter.drawEllipse(body.adjusted(4, 6, -4, -6))
    center = body.center()
    for dx in (-14, 0, 14):
        painter.drawEllipse(QPointF(center.x() + dx, center.y()), 3, 3)


def _draw_host(painter: QPainter, body: QRectF) -> None:
    tower = QRectF(body.left() + 10, body.top(), 24, body.height())
    screen = QRectF(body.left() + 38, body.top() + 6, 22, 18)
    painter.drawRoundedRect(tower, 3, 3)
    painter.drawRect(screen)
    painter.drawLine(QLineF(tower.left() + 5, tower.top() + 8, tower.right() - 5, tower.top() + 8))


def _draw_cloud(painter: QPainter, body: QRectF) -> None:
    path = QPainterPath()
    c = body.center()
    for dx, dy, r in ((-16, 4, 12), (0, -6, 15), (16, 4, 12), (0, 8, 12)):
        path.addEllipse(QPointF(c.x() + dx, c.y() + dy), r, r)
    painter.drawPath(path.simplified())


_SHAPES = {labs.MACHINE: _draw_machine, labs.SWITCH: _draw_switch, labs.HUB: _draw_hub,
           labs.HOST: _draw_host, labs.INTERNET: _draw_cloud}


class LinkItem(QGraphicsItem):
    """A cable: its card and port at the ends, traffic as colour and width, impairments in red."""

    def __init__(self, link: labs.Link, machine: NodeItem, network: NodeItem):
        super().__init__()
        self.key = (link.machine, link.card)
        self.machine_item, self.network_item = machine, network
        machine.links.append(self)
        network.links.append(self)
        self.card_text = link.card
        self.port_text = "" if link.port is None else str(link.port)
        self.impairment_text = ""
        self.packets_per_second = 0.0
        self.live = False
        self.line = QLineF()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setZValue(0)
        self.update_from(link)
        self.adjust()

    def update_from(self, link: labs.Link) -> None:
        parts = []
        if link.loss:
            parts.append(f"loss {link.loss:g}%")
        if link.delay_ms:
            parts.append(f"delay {link.delay_ms:g} ms" + (f" ±{link.jitter_ms:g}" if link.jitter_ms else ""))
        if link.duplicate:
            parts.append(f"dup {link.duplicate:g}%")
        self.impairment_text = ", ".join(parts)
        self.port_text = "" if link.port is None else str(link.port)
        self.setToolTip(link.label() + (f"\n{self.impairment_text}" if parts else ""))
        self.update()

    def set_traffic(self, packets_per_second: float, live: bool) -> None:
        if (packets_per_second, live) != (self.packets_per_second, self.live):
            self.packets_per_second, self.live = packets_per_second, live
            self.update()

    def detach(self) -> None:
        for end in (self.machine_item, self.network_item):
            if self in end.links:
                end.links.remove(self)

    def adjust(self) -> None:
        self.prepareGeometryChange()
        self.line = QLineF(self.machine_item.pos(), self.network_item.pos())

    def boundingRect(self) -> QRectF:
        return QRectF(self.line.p1(), self.line.p2()).normalized().adjusted(-60, -30, 220, 30)

    def shape(self) -> QPainterPath:
        path = QPainterPath(self.line.p1())
        path.lineTo(self.line.p2())
        stroker = QPainterPathStroker()
        stroker.setWidth(10)
        return stroker.createStroke(path)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        busy = self.packets_per_second > 0
        color = QColor("#1a73e8") if selected else QColor("#2e9d4f" if busy else ("#5f6368" if self.live else "#9aa0a6"))
        width = 2.0 + min(4.0, self.packets_per_second / 25.0)
        pen = QPen(color, width)
        if self.impairment_text:
            pen.setColor(QColor("#d93025") if not selected else color)
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.drawLine(self.line)
        self._paint_end_labels(painter)
        middle = self.line.pointAt(0.5)
        notes = [text for text in (self.impairment_text,
                                   f"{self.packets_per_second:.0f} pkt/s" if busy else "") if text]
        if notes:
            painter.setPen(QColor("#d93025") if self.impairment_text else QColor("#2e7d32"))
            # beside the cable rather than across it
            painter.drawText(QRectF(middle.x() + 8, middle.y() - 8, 200, 16),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, " · ".join(notes))

    def _paint_end_labels(self, painter: QPainter) -> None:
        font = QFont(painter.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
        painter.setFont(font)
        length = self.line.length() or 1.0
        for text, fraction in ((self.card_text, 0.0), (self.port_text, 1.0)):
            if not text:
                continue
            # past the node's outline and its name, so the label never covers either
            offset = min(0.4, 74.0 / length)
            point = self.line.pointAt(offset if fraction == 0 else 1.0 - offset)
            width = painter.fontMetrics().horizontalAdvance(text) + 8
            rect = QRectF(point.x() - width / 2, point.y() - 8, width, 16)
            painter.setPen(QPen(QColor("#c4c7cc"), 1))
            painter.setBrush(QColor(255, 255, 255, 235))
            painter.drawRoundedRect(rect, 4, 4)
            painter.setPen(QColor("#3c4043"))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
