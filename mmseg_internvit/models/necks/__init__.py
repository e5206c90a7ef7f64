from .last_map_pyramid import LastMapFeature2Pyramid

__all__ = ['LastMapFeature2Pyramid']
