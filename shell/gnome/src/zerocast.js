// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The zerocast panel indicator: a client of the daemon's D-Bus API (org.zerocast.Recorder1,
// data/README.md). It starts nothing at login: the manager proxy is created with
// DO_NOT_AUTO_START, and only a Start from the menu or the shortcut activates the daemon.
//
// This one file serves GNOME 43-44 (legacy `imports`) and 45+ (ES modules): it imports
// nothing itself; extension-legacy.js / extension-esm.js hand it the shell's modules, and
// build.sh strips the `export` keywords for the legacy zip.

const BUS_NAME = 'org.zerocast.Recorder1';
const MANAGER_PATH = '/org/zerocast/Recorder1';
const MANAGER_IFACE = 'org.zerocast.Recorder1';
const RECORDING_IFACE = 'org.zerocast.Recording1';
const PROPERTIES_IFACE = 'org.freedesktop.DBus.Properties';
// A Start that shows the portal's share dialog waits for the user.
const START_TIMEOUT_MS = 120000;
const CALL_TIMEOUT_MS = 60000;
const RUNNING_STATES = ['starting', 'recording', 'paused', 'finishing'];

/**
 * Formats seconds as m:ss (h:mm:ss from an hour on).
 *
 * @param {number} seconds elapsed recording time
 * @returns {string}
 */
export function formatElapsed(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const pad = n => String(n).padStart(2, '0');
    const h = Math.floor(s / 3600);
    const m = Math.floor(s / 60) % 60;
    return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

/**
 * The recording number at the end of an object path (newest = highest).
 *
 * @param {string} path a recording's object path
 * @returns {number}
 */
function recordingNumber(path) {
    return Number(path.slice(path.lastIndexOf('/') + 1)) || 0;
}

export class ZerocastIndicator {
    /**
     * @param {object} shell the shell's modules: GLib, Gio, St, Clutter, Meta, Shell, Main,
     *   PanelMenu, PopupMenu
     * @param {object} settings the extension's Gio.Settings (keybindings)
     */
    constructor(shell, settings) {
        this._shell = shell;
        this._settings = settings;
        // path -> { state, duration, durationAt (µs, monotonic), file }
        this._recordings = new Map();
        this._daemonOwner = null;
        this._lost = false;
        this._lastError = '';
        this._lastShortcutUs = 0;
        this._lastFile = '';
        this._tick = 0;
        this._cancellable = new shell.Gio.Cancellable();
        this._buildUi();
        this._bindKeys();
        this._connectBus();
    }

    _buildUi() {
        const { St, Clutter, Main, PanelMenu, PopupMenu } = this._shell;
        this.button = new PanelMenu.Button(0.0, 'zerocast', false);
        // Read-only view for tests and other extensions: button.zerocast.getStatus().
        this.button.zerocast = this;
        const box = new St.BoxLayout({ style_class: 'panel-status-menu-box' });
        this._icon = new St.Icon({
            icon_name: 'media-record-symbolic',
            style_class: 'system-status-icon zerocast-icon',
        });
        this._label = new St.Label({
            text: '',
            style_class: 'zerocast-time',
            y_align: Clutter.ActorAlign.CENTER,
            visible: false,
        });
        box.add_child(this._icon);
        box.add_child(this._label);
        this.button.add_child(box);

        const menu = this.button.menu;
        this._statusItem = new PopupMenu.PopupMenuItem('', { reactive: false });
        menu.addMenuItem(this._statusItem);
        menu.addMenuItem(new PopupMenu.PopupSeparatorMenuItem());
        this._screenItem = menu.addAction('Record screen', () => this.start('monitor'));
        this._windowItem = menu.addAction('Record window', () => this.start('window'));
        this._pauseItem = menu.addAction('Pause', () => this.togglePause());
        this._stopItem = menu.addAction('Stop', () => this.stop());
        menu.addMenuItem(new PopupMenu.PopupSeparatorMenuItem());
        menu.addAction('Open recordings folder', () => this.openFolder());

        Main.panel.addToStatusArea('zerocast', this.button);
        this._sync();
    }

    _bindKeys() {
        this._keys = {
            'toggle-recording': () => {
                this._lastShortcutUs = this._shell.GLib.get_real_time();
                this.toggle();
            },
            'toggle-pause': () => {
                this._lastShortcutUs = this._shell.GLib.get_real_time();
                this.togglePause();
            },
        };
        // mutter follows a change of the setting by itself (its own `changed::NAME` handler,
        // then a rebuild of its binding table in a low-priority idle). Removing and adding the
        // binding again from our own `changed::` handler must not be done: until that idle runs,
        // mutter's table points at the freed binding, and a key press in between crashed
        // gnome-shell 43 (`malformed UTF-8` in `_filterKeybinding`).
        for (const [name, handler] of Object.entries(this._keys))
            this._addKey(name, handler);
    }

    _addKey(name, handler) {
        const { Main, Meta, Shell } = this._shell;
        const modes = Shell.ActionMode.NORMAL | Shell.ActionMode.OVERVIEW | Shell.ActionMode.POPUP;
        Main.wm.addKeybinding(name, this._settings, Meta.KeyBindingFlags.NONE, modes, handler);
    }

    _connectBus() {
        const { Gio } = this._shell;
        this._bus = Gio.DBus.session;
        // Every PropertiesChanged of the daemon: the manager's Recordings and each
        // recording's State/Duration, without a proxy per recording.
        this._propsSub = this._bus.signal_subscribe(BUS_NAME, PROPERTIES_IFACE,
            'PropertiesChanged', null, null, Gio.DBusSignalFlags.NONE,
            (_c, _s, path, _i, _n, params) => this._onPropertiesChanged(path, params));
        // DO_NOT_AUTO_START: creating the proxy must not start the daemon (nor at login).
        Gio.DBusProxy.new(this._bus,
            Gio.DBusProxyFlags.DO_NOT_AUTO_START | Gio.DBusProxyFlags.DO_NOT_LOAD_PROPERTIES,
            null, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, this._cancellable,
            (_o, res) => {
                try {
                    this._proxy = Gio.DBusProxy.new_finish(res);
                } catch (e) {
                    if (!e.matches(Gio.IOErrorEnum, Gio.IOErrorEnum.CANCELLED))
                        logError(e, 'zerocast: manager proxy');
                    return;
                }
                this._ownerId = this._proxy.connect('notify::g-name-owner',
                    () => this._onOwnerChanged());
                this._onOwnerChanged();
            });
    }

    _onOwnerChanged() {
        const owner = this._proxy.g_name_owner;
        if (owner === this._daemonOwner)
            return;
        const hadRunning = this._current() !== null;
        this._daemonOwner = owner;
        if (!owner) {
            // The daemon is gone: its recordings with it. Say so if one was running.
            this._recordings.clear();
            this._lost = hadRunning;
        } else {
            this._lost = false;
            this._refreshRecordings();
        }
        this._sync();
    }

    _getProperty(path, iface, name, callback) {
        const { GLib, Gio } = this._shell;
        this._bus.call(BUS_NAME, path, PROPERTIES_IFACE, 'Get',
            new GLib.Variant('(ss)', [iface, name]), new GLib.VariantType('(v)'),
            Gio.DBusCallFlags.NO_AUTO_START, CALL_TIMEOUT_MS, this._cancellable,
            (_c, res) => {
                try {
                    const [v] = this._bus.call_finish(res).deepUnpack();
                    callback(v.recursiveUnpack());
                } catch (e) {
                    if (!e.matches(Gio.IOErrorEnum, Gio.IOErrorEnum.CANCELLED))
                        log(`zerocast: Get ${name} on ${path}: ${e.message}`);
                }
            });
    }

    _refreshRecordings() {
        this._getProperty(MANAGER_PATH, MANAGER_IFACE, 'Recordings',
            paths => this._setRecordings(paths));
    }

    _setRecordings(paths) {
        for (const p of [...this._recordings.keys()]) {
            if (!paths.includes(p))
                this._recordings.delete(p);
        }
        for (const p of paths) {
            if (this._recordings.has(p))
                continue;
            this._recordings.set(p, { state: 'starting', duration: 0, durationAt: 0, file: '' });
            this._loadRecording(p);
        }
        this._sync();
    }

    _loadRecording(path) {
        const { GLib, Gio } = this._shell;
        this._bus.call(BUS_NAME, path, PROPERTIES_IFACE, 'GetAll',
            new GLib.Variant('(s)', [RECORDING_IFACE]), new GLib.VariantType('(a{sv})'),
            Gio.DBusCallFlags.NO_AUTO_START, CALL_TIMEOUT_MS, this._cancellable,
            (_c, res) => {
                try {
                    const [props] = this._bus.call_finish(res).recursiveUnpack();
                    this._updateRecording(path, props);
                } catch (e) {
                    if (!e.matches(Gio.IOErrorEnum, Gio.IOErrorEnum.CANCELLED))
                        log(`zerocast: GetAll on ${path}: ${e.message}`);
                }
            });
    }

    _onPropertiesChanged(path, params) {
        const [iface, changed] = params.recursiveUnpack();
        if (iface === MANAGER_IFACE && path === MANAGER_PATH) {
            if ('Recordings' in changed)
                this._setRecordings(changed.Recordings);
        } else if (iface === RECORDING_IFACE) {
            this._updateRecording(path, changed);
        }
    }

    _updateRecording(path, props) {
        const r = this._recordings.get(path);
        if (!r)
            return;
        if ('State' in props)
            r.state = props.State;
        if ('Duration' in props) {
            r.duration = props.Duration;
            r.durationAt = this._shell.GLib.get_monotonic_time();
        }
        if ('Path' in props && props.Path) {
            r.file = props.Path;
            this._lastFile = props.Path;
        }
        this._sync();
    }

    /**
     * The newest running recording, or null.
     *
     * @returns {?Array} [path, recording]
     */
    _current() {
        let best = null;
        for (const [path, r] of this._recordings) {
            if (RUNNING_STATES.includes(r.state) &&
                (!best || recordingNumber(path) > recordingNumber(best[0])))
                best = [path, r];
        }
        return best;
    }

    _elapsed(r) {
        if (r.state !== 'recording' || !r.durationAt)
            return r.duration;
        // Duration is signalled at most once a second: extrapolate in between.
        return r.duration + (this._shell.GLib.get_monotonic_time() - r.durationAt) / 1e6;
    }

    _sync() {
        const { GLib } = this._shell;
        const current = this._current();
        const state = this._state();
        for (const s of ['recording', 'paused', 'lost'])
            this.button.remove_style_class_name(`zerocast-${s}`);
        if (current) {
            const [, r] = current;
            const paused = r.state === 'paused';
            this.button.add_style_class_name(paused ? 'zerocast-paused' : 'zerocast-recording');
            this._icon.icon_name = paused ? 'media-playback-pause-symbolic' : 'media-record-symbolic';
            this._label.text = r.state === 'starting' ? '…' : formatElapsed(this._elapsed(r));
            this._label.visible = true;
            this._statusItem.label.text = {
                starting: 'Starting…',
                recording: 'Recording',
                paused: 'Paused',
                finishing: 'Saving…',
            }[r.state];
            this._pauseItem.label.text = paused ? 'Resume' : 'Pause';
        } else {
            if (this._lost)
                this.button.add_style_class_name('zerocast-lost');
            this._icon.icon_name = this._lost ? 'dialog-warning-symbolic' : 'media-record-symbolic';
            this._label.text = '';
            this._label.visible = false;
            this._pauseItem.label.text = 'Pause';
            if (this._lost)
                this._statusItem.label.text = 'The recorder stopped unexpectedly';
            else if (this._lastError)
                this._statusItem.label.text = this._lastError;
            else
                this._statusItem.label.text = this._daemonOwner ? 'Ready' : 'Not running (starts on Record)';
        }
        this._screenItem.setSensitive(!current);
        this._windowItem.setSensitive(!current);
        this._pauseItem.setSensitive(current !== null &&
            ['recording', 'paused'].includes(current[1].state));
        this._stopItem.setSensitive(current !== null);

        // One timer while a recording runs, for the elapsed time.
        if (state === 'recording' && !this._tick) {
            this._tick = GLib.timeout_add(GLib.PRIORITY_DEFAULT, 500, () => {
                this._sync();
                return GLib.SOURCE_CONTINUE;
            });
        } else if (state !== 'recording' && this._tick) {
            GLib.source_remove(this._tick);
            this._tick = 0;
        }
    }

    _state() {
        const current = this._current();
        if (current)
            return current[1].state;
        return this._lost ? 'daemon-lost' : 'idle';
    }

    /**
     * What the indicator shows, for tests and scripts (Eval in unsafe mode).
     *
     * @returns {object}
     */
    getStatus() {
        const current = this._current();
        return {
            state: this._state(),
            recording: current ? current[0] : null,
            label: this._label.visible ? this._label.text : '',
            icon: this._icon.icon_name,
            status: this._statusItem.label.text,
            daemon: this._daemonOwner,
            error: this._lastError,
            lastShortcutUs: this._lastShortcutUs,
        };
    }

    _call(path, iface, method, args, replyType, timeout, flags, onReply) {
        const { GLib, Gio } = this._shell;
        this._bus.call(BUS_NAME, path, iface, method, args,
            replyType ? new GLib.VariantType(replyType) : null, flags, timeout,
            this._cancellable, (_c, res) => {
                try {
                    const reply = this._bus.call_finish(res);
                    this._lastError = '';
                    if (onReply)
                        onReply(reply);
                } catch (e) {
                    if (e.matches(Gio.IOErrorEnum, Gio.IOErrorEnum.CANCELLED))
                        return;
                    Gio.DBusError.strip_remote_error(e);
                    this._lastError = `${method} failed: ${e.message}`;
                    log(`zerocast: ${this._lastError}`);
                    this._shell.Main.notifyError('zerocast', this._lastError);
                }
                this._sync();
            });
    }

    /**
     * Starts a recording. Not NO_AUTO_START: this is the call that activates the daemon.
     *
     * @param {string} source 'monitor' or 'window'
     */
    start(source) {
        const { GLib, Gio } = this._shell;
        if (this._current())
            return;
        this._lost = false;
        const options = { source: new GLib.Variant('s', source) };
        this._call(MANAGER_PATH, MANAGER_IFACE, 'Start', new GLib.Variant('(a{sv})', [options]),
            '(o)', START_TIMEOUT_MS, Gio.DBusCallFlags.NONE, reply => {
                const [path] = reply.deepUnpack();
                // The Recordings change may not have arrived yet.
                if (!this._recordings.has(path))
                    this._setRecordings([...this._recordings.keys(), path]);
            });
    }

    stop() {
        const { Gio } = this._shell;
        const current = this._current();
        if (current) {
            this._call(current[0], RECORDING_IFACE, 'Stop', null, '(s)', CALL_TIMEOUT_MS,
                Gio.DBusCallFlags.NO_AUTO_START, null);
        }
    }

    toggle() {
        if (this._current())
            this.stop();
        else
            this.start('monitor');
    }

    togglePause() {
        const { Gio } = this._shell;
        const current = this._current();
        if (!current || !['recording', 'paused'].includes(current[1].state))
            return;
        const method = current[1].state === 'paused' ? 'Resume' : 'Pause';
        this._call(current[0], RECORDING_IFACE, method, null, null, CALL_TIMEOUT_MS,
            Gio.DBusCallFlags.NO_AUTO_START, null);
    }

    openFolder() {
        const { GLib, Gio } = this._shell;
        let dir = this._lastFile ? GLib.path_get_dirname(this._lastFile) : null;
        if (!dir) {
            dir = GLib.get_user_special_dir(GLib.UserDirectory.DIRECTORY_VIDEOS) ||
                GLib.build_filenamev([GLib.get_home_dir(), 'Videos']);
        }
        try {
            Gio.AppInfo.launch_default_for_uri(GLib.filename_to_uri(dir, null),
                global.create_app_launch_context(0, -1));
        } catch (e) {
            this._shell.Main.notifyError('zerocast', `Cannot open ${dir}: ${e.message}`);
        }
    }

    destroy() {
        const { GLib, Main } = this._shell;
        this._cancellable.cancel();
        for (const name of Object.keys(this._keys))
            Main.wm.removeKeybinding(name);
        if (this._tick)
            GLib.source_remove(this._tick);
        this._tick = 0;
        this._bus.signal_unsubscribe(this._propsSub);
        if (this._proxy && this._ownerId)
            this._proxy.disconnect(this._ownerId);
        this._proxy = null;
        this.button.destroy();
        this.button = null;
    }
}
