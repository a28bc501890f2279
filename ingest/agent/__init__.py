"""The on-premises agent (``rtcc agent``): finds cameras (ONVIF WS-Discovery and manual
entries), keeps one outbound control connection to the server, and publishes live video with
WHIP when the server asks. Camera passwords never leave the machine it runs on."""
