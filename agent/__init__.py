"""The on-premises agent (``rtcc agent``): finds cameras (ONVIF WS-Discovery and manual
entries), keeps one outbound control connection to the server, and publishes live video with
WHIP when the server asks. With a rolling buffer it also records every camera on the owner's
machine and uploads the ranges of approved footage requests, hashed at capture. Camera passwords
never leave the machine it runs on."""
