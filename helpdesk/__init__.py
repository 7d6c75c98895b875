"""madoguchi (窓口): the helpdesk application. Build it with ``helpdesk.app.create_app``."""
