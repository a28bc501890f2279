from tests.fixtures.onvif import hostile_onvif, onvif_sim_factory

__all__ = ["hostile_onvif", "onvif_sim_factory"]
