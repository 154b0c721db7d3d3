#version 330 core
// Segmentation pass (replaces pyrender's flat.frag): writes class_id (id / 255) unlit, no gamma.
flat in float class_id;
out vec4 frag_color;

void main()
{
    frag_color = vec4(class_id, class_id, class_id, 1.0);
}
