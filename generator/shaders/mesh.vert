#version 330 core
// facegen's lean replacement for pyrender's mesh.vert: positions, normals and a vertex colour made
// here from static per-vertex skin maps and the sample's appearance (raster.py: static_attributes,
// appearance_uniform), so a sample uploads only positions and normals. No textures or instancing;
// the model matrix is the identity.
layout(location = 0) in vec3 position;
layout(location = NORMAL_LOC) in vec3 normal;               // area weighted, not normalised
layout(location = TANGENT_LOC) in vec4 skin_maps;           // cheeks, lips, brows, brow_core
layout(location = TEXCOORD_0_LOC) in vec2 detail_maps;      // freckles, iris
layout(location = TEXCOORD_1_LOC) in vec2 rule;             // iris_shade, colour rule
layout(location = COLOR_0_LOC) in vec4 color_0;             // fixed colour, class id / 255

uniform mat4 M;
uniform mat4 V;
uniform mat4 P;
// [0] skin albedo, freckles  [1] cheek tint - 1, lip strength  [2] lip colour, brow density
// [3] brow colour, brow thickness  [4] iris colour, brow class  [5] sclera colour
uniform vec4 appearance[6];

out vec3 frag_position;
out vec3 frag_normal;
out vec4 color_multiplier;
// The segmentation class (id / 255), written to the colour pass's alpha: one per triangle (flat:
// its provoking vertex), the vertex's static class or, on skin where the sample's brows cover more
// than half, the brow class (classes.vert, the multisampled path's separate pass, does the same).
flat out float class_id;

vec3 albedo()
{
    if (rule.y < 0.5) {  // skin: tone, cheeks, lips, brows, freckles
        vec3 skin = appearance[0].rgb;
        vec3 rgb = skin * (1.0 + skin_maps.x * appearance[1].rgb);
        rgb += (appearance[2].rgb - rgb) * (skin_maps.y * appearance[1].a);
        float brow = clamp(skin_maps.z * appearance[2].a * float(skin_maps.w <= appearance[3].a), 0.0, 1.0);
        rgb += (appearance[3].rgb - rgb) * brow;
        return rgb * (1.0 - 0.35 * appearance[0].a * detail_maps.x);
    }
    if (rule.y < 1.5) return appearance[0].rgb * 0.8;  // eye socket
    if (rule.y < 2.5) {  // eyeball: the iris painted on the sclera
        vec3 sclera = appearance[5].rgb;
        return sclera + detail_maps.y * (appearance[4].rgb * rule.x - sclera);
    }
    return color_0.rgb;  // mouth interior, teeth
}

void main()
{
    vec4 world = M * vec4(position, 1.0);
    gl_Position = P * V * world;
    frag_position = world.xyz;
    float len = length(normal);
    frag_normal = mat3(M) * (len > 0.0 ? normal / len : vec3(0.0, 0.0, 1.0));
    color_multiplier = vec4(albedo(), 1.0);
    bool brow = rule.y < 0.5 && skin_maps.z * float(skin_maps.w <= appearance[3].a) > 0.5;
    class_id = brow ? appearance[4].a : color_0.a;
}
