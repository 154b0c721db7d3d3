#version 330 core
// facegen's lean replacement for pyrender's PBR mesh.frag: Lambert diffuse plus a Blinn-Phong
// highlight whose sharpness follows the material roughness, for directional lights and an ambient
// term. A fraction of the PBR shader's per-pixel cost on a software rasteriser (llvmpipe).
struct DirectionalLight {
    vec3 color;
    float intensity;
    vec3 direction;
};
struct Material {
    vec4 base_color_factor;
    float roughness_factor;
};

uniform Material material;
uniform DirectionalLight directional_lights[MAX_DIRECTIONAL_LIGHTS];
uniform int n_directional_lights;
uniform vec3 cam_pos;
uniform vec3 ambient_light;

in vec3 frag_position;
in vec3 frag_normal;
in vec4 color_multiplier;
flat in float class_id;  // segmentation class / 255 (mesh.vert), kept in alpha: blending is off

out vec4 frag_color;

const float PI = 3.141592653589793;

void main()
{
    vec3 albedo = material.base_color_factor.rgb * color_multiplier.rgb;
    vec3 n = normalize(frag_normal);
    vec3 v = normalize(cam_pos - frag_position);
    if (dot(n, v) < 0.0) n = -n;  // double sided: mouth interior and eyelids seen from behind
    float r = clamp(material.roughness_factor, 0.05, 1.0);
    float shininess = 2.0 / (r * r * r * r) - 2.0;
    float specular_strength = 0.025 * (shininess + 8.0) / (8.0 * PI);
    vec3 color = albedo * ambient_light;
    for (int i = 0; i < n_directional_lights; i++) {
        vec3 l = -directional_lights[i].direction;
        float nl = max(dot(n, l), 0.0);
        vec3 h = normalize(l + v);
        float spec = specular_strength * pow(max(dot(n, h), 0.0), shininess);
        color += directional_lights[i].intensity * directional_lights[i].color * nl * (albedo / PI + spec);
    }
    frag_color = vec4(pow(clamp(color, 0.0, 1.0), vec3(1.0 / 2.2)), class_id);
}
