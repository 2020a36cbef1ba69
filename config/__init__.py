from config.settings import Settings, SettingsError, hide_password, load_settings

__all__ = ["Settings", "SettingsError", "hide_password", "load_settings"]
