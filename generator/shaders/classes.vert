#version 330 core
// Segmentation pass (replaces pyrender's flat.vert): the class id travels in the vertex colour's
// alpha and is not interpolated (flat: one class per triangle, from its provoking vertex).
layout(location = 0) in vec3 position;
layout(location = COLOR_0_LOC) in vec4 color_0;

uniform mat4 M;
uniform mat4 V;
uniform mat4 P;

flat out float class_id;

void main()
{
    gl_Position = P * V * M * vec4(position, 1.0);
    class_id = color_0.a;
}
