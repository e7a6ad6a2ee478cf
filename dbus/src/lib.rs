//! zerocast-dbus
