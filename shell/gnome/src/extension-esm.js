// SPDX-License-Identifier: MIT OR Apache-2.0
//
// GNOME Shell 45+ entry point (ES modules). build.sh installs it as extension.js in the 45+
// zip. The indicator itself is zerocast.js, shared with the 43-44 entry point.

import GLib from 'gi://GLib';
import Gio from 'gi://Gio';
import St from 'gi://St';
import Clutter from 'gi://Clutter';
import Meta from 'gi://Meta';
import Shell from 'gi://Shell';
import * as Main from 'resource:///org/gnome/shell/ui/main.js';
import * as PanelMenu from 'resource:///org/gnome/shell/ui/panelMenu.js';
import * as PopupMenu from 'resource:///org/gnome/shell/ui/popupMenu.js';
import { Extension } from 'resource:///org/gnome/shell/extensions/extension.js';

import { ZerocastIndicator } from './zerocast.js';

export default class ZerocastExtension extends Extension {
    enable() {
        const shell = { GLib, Gio, St, Clutter, Meta, Shell, Main, PanelMenu, PopupMenu };
        this._indicator = new ZerocastIndicator(shell, this.getSettings());
    }

    disable() {
        this._indicator.destroy();
        this._indicator = null;
    }
}
