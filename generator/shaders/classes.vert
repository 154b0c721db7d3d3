#version 330 core
// Segmentation pass (replaces pyrender's flat.vert): the class id is the vertex's static class
// (color_0.a) or, on skin where the sample's brows cover more than half, the brow class; it is not
// interpolated (flat: one class per triangle, from its provoking vertex). Attributes and the
// appearance uniform as in mesh.vert.
layout(location = 0) in vec3 position;
layout(location = TANGENT_LOC) in vec4 skin_maps;           // cheeks, lips, brows, brow_core
layout(location = TEXCOORD_1_LOC) in vec2 rule;             // iris_shade, colour rule
layout(location = COLOR_0_LOC) in vec4 color_0;             // fixed colour, class id / 255

uniform mat4 M;
uniform mat4 V;
uniform mat4 P;
uniform vec4 appearance[6];

flat out float class_id;

void main()
{
    gl_Position = P * V * M * vec4(position, 1.0);
    bool brow = rule.y < 0.5 && skin_maps.z * float(skin_maps.w <= appearance[3].a) > 0.5;
    class_id = brow ? appearance[4].a : color_0.a;
}
