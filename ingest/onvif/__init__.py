"""ONVIF for the agent: a typed, hardened adapter over onvif-zeep-async and WS-Discovery.

``OnvifClient`` (device information, profiles, stream and snapshot URIs, PTZ, synchronization
points) returns the frozen values of ``ingest.onvif.models``; ``discovery.probe`` finds cameras.
Camera replies are parsed with DTDs and entities forbidden, bounded in size and time.
"""
