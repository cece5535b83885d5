"""Run a trained model on your own images and get a named scene graph back.

    from openpsg.apis import init_model, inference_image

    model = init_model(CONFIG, CHECKPOINT, device='cpu')
    result = inference_image(model, 'photo.jpg')       # -> SceneGraphResult
    print(*result.top_triplets(5), sep='\n')
"""
from .inference import (ANNOTATION_STEPS, DeviceError, ImageInputError, LoadImageFromArray,
                        build_inference_pipeline, inference_image, inference_images, init_model,
                        load_image, resolve_device)
from .result import SceneGraphResult, Triplet

__all__ = [
    'ANNOTATION_STEPS', 'DeviceError', 'ImageInputError', 'LoadImageFromArray', 'SceneGraphResult',
    'Triplet', 'build_inference_pipeline', 'inference_image', 'inference_images', 'init_model',
    'load_image', 'resolve_device',
]
