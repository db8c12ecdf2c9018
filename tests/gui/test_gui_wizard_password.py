"""The wizard's root password: offered for the Debian template only, linux engine only."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from gui_main_support import fill_machine_page, start_wizard, window, wizard_error  # noqa: F401


def choose_template(wizard, name: str) -> None:
    templates = wizard.source_page.templates
    for row in range(templates.count()):
        if templates.item(row).data(Qt.ItemDataRole.UserRole) == name:
            templates.setCurrentRow(row)
            return
    raise AssertionError(f"template {name} is not listed")


def test_password_row_follows_the_template(window):
    wizard = start_wizard(window)
    choose_template(wizard, "busybox")
    wizard.next()
    page = wizard.machine_page
    assert not page.form.isRowVisible(page.password_row)
    wizard.back()
    choose_template(wizard, "debian")
    wizard.next()
    assert page.form.isRowVisible(page.password_row)
    fill_machine_page(wizard, name="deb1")
    page.password.setText("s3cret")
    page.engine.setCurrentIndex(page.engine.findData("tt"))
    wizard.button(QWizard.WizardButton.FinishButton).click()
    assert "root password can be set on the linux engine only" in wizard_error(wizard)
    page.engine.setCurrentIndex(page.engine.findData("linux"))
    assert page.validatePage()
    assert wizard.plan.root_password == "s3cret"
    wizard.reject()
