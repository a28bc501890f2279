from tests.fixtures.onvif import onvif_sim_factory

__all__ = ["onvif_sim_factory"]
