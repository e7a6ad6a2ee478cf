// SPDX-License-Identifier: MIT OR Apache-2.0
//
// GNOME Shell 43-44 entry point (legacy `imports`). build.sh installs it as extension.js in
// the 43-44 zip. The indicator itself is zerocast.js, shared with the 45+ entry point.

const { GLib, Gio, St, Clutter, Meta, Shell } = imports.gi;
const Main = imports.ui.main;
const PanelMenu = imports.ui.panelMenu;
const PopupMenu = imports.ui.popupMenu;
const ExtensionUtils = imports.misc.extensionUtils;
const Me = ExtensionUtils.getCurrentExtension();

class Extension {
    constructor() {
        this._indicator = null;
    }

    enable() {
        const shell = { GLib, Gio, St, Clutter, Meta, Shell, Main, PanelMenu, PopupMenu };
        this._indicator = new Me.imports.zerocast.ZerocastIndicator(shell,
            ExtensionUtils.getSettings());
    }

    disable() {
        this._indicator.destroy();
        this._indicator = null;
    }
}

/**
 * Called once by the shell when it loads the extension.
 *
 * @returns {Extension}
 */
function init() {
    return new Extension();
}
