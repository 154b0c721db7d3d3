"""facegen.generator: scene sampling, renderers, labelling and the render job."""
