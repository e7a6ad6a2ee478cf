/* The recorder's SPA pods built with libspa's own C builder: params.rs tests compare their
 * bytes with the Rust serializer's (same approach as pipewire-rs libspa/tests/pod.c). */
#include <spa/buffer/meta.h>
#include <spa/param/buffers.h>
#include <spa/param/format.h>
#include <spa/param/param.h>
#include <spa/param/video/raw.h>
#include <spa/pod/builder.h>
#include <stdint.h>

static void size_and_rate(struct spa_pod_builder *b)
{
	spa_pod_builder_add(b,
		SPA_FORMAT_VIDEO_size, SPA_POD_CHOICE_RANGE_Rectangle(
			&SPA_RECTANGLE(1920, 1080), &SPA_RECTANGLE(1, 1), &SPA_RECTANGLE(16384, 16384)),
		SPA_FORMAT_VIDEO_framerate, SPA_POD_CHOICE_RANGE_Fraction(
			&SPA_FRACTION(60, 1), &SPA_FRACTION(0, 1), &SPA_FRACTION(1000, 1)),
		0);
}

/* Returns the pod's size, 0 if `len` is too small. */
size_t golden_dmabuf_enum_format(uint8_t *buf, size_t len, uint32_t format,
				 const uint64_t *mods, uint32_t n_mods)
{
	struct spa_pod_builder b = SPA_POD_BUILDER_INIT(buf, len);
	struct spa_pod_frame f[2];
	uint32_t i;

	spa_pod_builder_push_object(&b, &f[0], SPA_TYPE_OBJECT_Format, SPA_PARAM_EnumFormat);
	spa_pod_builder_add(&b,
		SPA_FORMAT_mediaType, SPA_POD_Id(SPA_MEDIA_TYPE_video),
		SPA_FORMAT_mediaSubtype, SPA_POD_Id(SPA_MEDIA_SUBTYPE_raw),
		SPA_FORMAT_VIDEO_format, SPA_POD_Id(format),
		0);
	/* As OBS does: default first, then every modifier including the default again. */
	spa_pod_builder_prop(&b, SPA_FORMAT_VIDEO_modifier,
			     SPA_POD_PROP_FLAG_MANDATORY | SPA_POD_PROP_FLAG_DONT_FIXATE);
	spa_pod_builder_push_choice(&b, &f[1], SPA_CHOICE_Enum, 0);
	spa_pod_builder_long(&b, (int64_t)mods[0]);
	for (i = 0; i < n_mods; i++)
		spa_pod_builder_long(&b, (int64_t)mods[i]);
	spa_pod_builder_pop(&b, &f[1]);
	size_and_rate(&b);
	struct spa_pod *pod = spa_pod_builder_pop(&b, &f[0]);
	return pod && b.state.offset <= len ? SPA_POD_SIZE(pod) : 0;
}

size_t golden_shm_enum_format(uint8_t *buf, size_t len)
{
	struct spa_pod_builder b = SPA_POD_BUILDER_INIT(buf, len);
	struct spa_pod_frame f;

	spa_pod_builder_push_object(&b, &f, SPA_TYPE_OBJECT_Format, SPA_PARAM_EnumFormat);
	spa_pod_builder_add(&b,
		SPA_FORMAT_mediaType, SPA_POD_Id(SPA_MEDIA_TYPE_video),
		SPA_FORMAT_mediaSubtype, SPA_POD_Id(SPA_MEDIA_SUBTYPE_raw),
		SPA_FORMAT_VIDEO_format, SPA_POD_CHOICE_ENUM_Id(7,
			SPA_VIDEO_FORMAT_BGRx, SPA_VIDEO_FORMAT_BGRx, SPA_VIDEO_FORMAT_BGRA,
			SPA_VIDEO_FORMAT_RGBx, SPA_VIDEO_FORMAT_RGBA, SPA_VIDEO_FORMAT_xRGB,
			SPA_VIDEO_FORMAT_xBGR),
		0);
	size_and_rate(&b);
	struct spa_pod *pod = spa_pod_builder_pop(&b, &f);
	return pod && b.state.offset <= len ? SPA_POD_SIZE(pod) : 0;
}

size_t golden_buffers(uint8_t *buf, size_t len, int32_t data_types)
{
	struct spa_pod_builder b = SPA_POD_BUILDER_INIT(buf, len);
	struct spa_pod *pod = spa_pod_builder_add_object(&b,
		SPA_TYPE_OBJECT_ParamBuffers, SPA_PARAM_Buffers,
		SPA_PARAM_BUFFERS_buffers, SPA_POD_CHOICE_RANGE_Int(4, 4, 16),
		SPA_PARAM_BUFFERS_dataType, SPA_POD_CHOICE_FLAGS_Int(data_types));
	return pod && b.state.offset <= len ? SPA_POD_SIZE(pod) : 0;
}

size_t golden_meta(uint8_t *buf, size_t len, uint32_t type, int32_t size)
{
	struct spa_pod_builder b = SPA_POD_BUILDER_INIT(buf, len);
	struct spa_pod *pod = spa_pod_builder_add_object(&b,
		SPA_TYPE_OBJECT_ParamMeta, SPA_PARAM_Meta,
		SPA_PARAM_META_type, SPA_POD_Id(type),
		SPA_PARAM_META_size, SPA_POD_Int(size));
	return pod && b.state.offset <= len ? SPA_POD_SIZE(pod) : 0;
}

/* Buffers that exist only if the SyncTimeline meta is negotiated too (explicit sync), as
 * PipeWire's video-play-sync example and OBS build it. */
size_t golden_buffers_sync(uint8_t *buf, size_t len, int32_t data_types)
{
	struct spa_pod_builder b = SPA_POD_BUILDER_INIT(buf, len);
	struct spa_pod_frame f;
	spa_pod_builder_push_object(&b, &f, SPA_TYPE_OBJECT_ParamBuffers, SPA_PARAM_Buffers);
	spa_pod_builder_add(&b,
		SPA_PARAM_BUFFERS_buffers, SPA_POD_CHOICE_RANGE_Int(4, 4, 16),
		SPA_PARAM_BUFFERS_dataType, SPA_POD_CHOICE_FLAGS_Int(data_types),
		0);
	spa_pod_builder_prop(&b, SPA_PARAM_BUFFERS_metaType, SPA_POD_PROP_FLAG_MANDATORY);
	spa_pod_builder_int(&b, 1 << SPA_META_SyncTimeline);
	struct spa_pod *pod = spa_pod_builder_pop(&b, &f);
	return pod && b.state.offset <= len ? SPA_POD_SIZE(pod) : 0;
}
