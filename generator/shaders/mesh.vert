#version 330 core
// facegen's lean replacement for pyrender's mesh.vert: positions, normals, vertex colours only
// (the face mesh has no textures, tangents or instancing; the model matrix is the identity).
layout(location = 0) in vec3 position;
layout(location = NORMAL_LOC) in vec3 normal;
layout(location = COLOR_0_LOC) in vec4 color_0;

uniform mat4 M;
uniform mat4 V;
uniform mat4 P;

out vec3 frag_position;
out vec3 frag_normal;
out vec4 color_multiplier;

void main()
{
    vec4 world = M * vec4(position, 1.0);
    gl_Position = P * V * world;
    frag_position = world.xyz;
    frag_normal = mat3(M) * normal;
    color_multiplier = color_0;
}
