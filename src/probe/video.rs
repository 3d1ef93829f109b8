//! The probe's synthetic video: a moving test card, encoded as real VP8.
//!
//! Each frame is drawn here (colour bars, the words TEST CALL, and a block
//! that moves so that a person watching can tell the picture is live) and
//! encoded with libwebp, built from source by the `libwebp-sys` crate: a
//! lossy WebP image *is* one VP8 key frame inside a small RIFF wrapper, so
//! the `VP8 ` chunk is exactly what an RTP VP8 track carries. Every frame is
//! a key frame, which any VP8 decoder (browsers included) accepts, and no
//! media file, system library or external tool is needed on the machine
//! that runs the probe.
//!
//! A loop of [`LOOP_FRAMES`] frames is encoded once per process and then
//! replayed, so a probe call spends no CPU on encoding.

use bytes::Bytes;
use std::sync::OnceLock;
use std::time::Duration;

pub const WIDTH: usize = 320;
pub const HEIGHT: usize = 240;
pub const FPS: u32 = 15;
pub const FRAME_DURATION: Duration = Duration::from_millis(1000 / FPS as u64);
/// Two seconds of frames, replayed.
pub const LOOP_FRAMES: usize = 30;
const QUALITY: f32 = 60.0;

/// The encoded loop of VP8 key frames (encoded on first use).
pub fn frames() -> Result<&'static [Bytes], String> {
    static FRAMES: OnceLock<Result<Vec<Bytes>, String>> = OnceLock::new();
    FRAMES
        .get_or_init(|| {
            (0..LOOP_FRAMES)
                .map(|i| encode_vp8(&test_card(i), WIDTH, HEIGHT).map(Bytes::from))
                .collect()
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// Draws frame `index` of the test card as packed RGB.
pub fn test_card(index: usize) -> Vec<u8> {
    // NHS blue, white, and high-contrast bars: easy to tell apart on any screen.
    const BARS: [[u8; 3]; 7] = [
        [255, 255, 255],
        [255, 235, 59],
        [0, 188, 212],
        [76, 175, 80],
        [233, 30, 99],
        [244, 67, 54],
        [0, 94, 184],
    ];
    let mut rgb = vec![0u8; WIDTH * HEIGHT * 3];
    let mut put = |x: usize, y: usize, c: [u8; 3]| {
        if x < WIDTH && y < HEIGHT {
            let o = (y * WIDTH + x) * 3;
            rgb[o..o + 3].copy_from_slice(&c);
        }
    };
    let bars_bottom = HEIGHT * 2 / 3;
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let c = if y < bars_bottom {
                BARS[x * BARS.len() / WIDTH]
            } else {
                [0, 48, 135] // dark NHS blue band for the text and the moving block
            };
            put(x, y, c);
        }
    }
    // "TEST CALL", 4x scaled 5x7 glyphs, in the band.
    let scale = 4;
    let text = "TEST CALL";
    let text_width = text.len() * 6 * scale;
    let left = (WIDTH.saturating_sub(text_width)) / 2;
    let top = bars_bottom + 8;
    for (n, ch) in text.chars().enumerate() {
        let rows = glyph(ch);
        for (gy, row) in rows.iter().enumerate() {
            for gx in 0..5 {
                if row & (0b10000 >> gx) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            put(
                                left + (n * 6 + gx) * scale + dx,
                                top + gy * scale + dy,
                                [255, 255, 255],
                            );
                        }
                    }
                }
            }
        }
    }
    // A block that crosses the picture once per loop: the picture is live.
    let block = 16;
    let x0 = index * (WIDTH - block) / LOOP_FRAMES.max(1);
    for y in HEIGHT - block - 4..HEIGHT - 4 {
        for x in x0..x0 + block {
            put(x, y, [255, 184, 28]);
        }
    }
    rgb
}

/// 5x7 glyphs (one byte per row, five low bits, left to right) for the
/// letters the test card uses.
fn glyph(c: char) -> [u8; 7] {
    match c {
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        _ => [0; 7],
    }
}

/// Encodes packed RGB as one VP8 key frame (the payload of a lossy WebP's
/// `VP8 ` chunk).
pub fn encode_vp8(rgb: &[u8], width: usize, height: usize) -> Result<Vec<u8>, String> {
    if rgb.len() != width * height * 3 || width == 0 || height == 0 {
        return Err(format!(
            "frame buffer is {} bytes, expected {width}x{height}x3",
            rgb.len()
        ));
    }
    let (w, h, stride) = (
        i32::try_from(width).map_err(|e| e.to_string())?,
        i32::try_from(height).map_err(|e| e.to_string())?,
        i32::try_from(width * 3).map_err(|e| e.to_string())?,
    );
    let mut out: *mut u8 = std::ptr::null_mut();
    // SAFETY: `rgb` holds width*height*3 bytes (checked above) with the
    // given stride; libwebp allocates `out`, which is freed below with
    // WebPFree after being copied.
    let webp = unsafe {
        let size = libwebp_sys::WebPEncodeRGB(rgb.as_ptr(), w, h, stride, QUALITY, &mut out);
        if size == 0 || out.is_null() {
            return Err("libwebp could not encode the test frame".into());
        }
        let copy = std::slice::from_raw_parts(out, size).to_vec();
        libwebp_sys::WebPFree(out.cast());
        copy
    };
    vp8_chunk(&webp)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "libwebp produced a WebP file without a VP8 chunk".to_owned())
}

/// The `VP8 ` chunk of a simple (lossy, no alpha) WebP file.
fn vp8_chunk(webp: &[u8]) -> Option<&[u8]> {
    if webp.get(0..4)? != b"RIFF" || webp.get(8..12)? != b"WEBP" {
        return None;
    }
    let mut at = 12;
    while at + 8 <= webp.len() {
        let id = &webp[at..at + 4];
        let size = u32::from_le_bytes(webp[at + 4..at + 8].try_into().ok()?) as usize;
        let data = webp.get(at + 8..at + 8 + size)?;
        if id == b"VP8 " {
            return Some(data);
        }
        at += 8 + size + (size & 1);
    }
    None
}

/// What the first packet of a received VP8 frame says, if it starts a key
/// frame: its width and height (RFC 7741 payload descriptor, then the
/// RFC 6386 frame header).
pub fn keyframe_size(rtp_payload: &[u8]) -> Option<(u16, u16)> {
    let first = *rtp_payload.first()?;
    let extended = first & 0x80 != 0;
    let start_of_partition = first & 0x10 != 0;
    let partition_id = first & 0x07;
    if !start_of_partition || partition_id != 0 {
        return None;
    }
    let mut at = 1;
    if extended {
        let ext = *rtp_payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            // Picture id: 7 or 15 bits.
            let pid = *rtp_payload.get(at)?;
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            at += 1; // TID / KEYIDX
        }
    }
    let frame = rtp_payload.get(at..)?;
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_vp8_key_frames_of_the_test_card_size() {
        let frames = frames().expect("encodes");
        assert_eq!(frames.len(), LOOP_FRAMES);
        for f in frames {
            // Frame tag: key frame bit clear, show_frame set; then the start code.
            assert_eq!(f[0] & 0x01, 0, "key frame");
            assert_ne!(f[0] & 0x10, 0, "shown");
            assert_eq!(&f[3..6], &[0x9d, 0x01, 0x2a]);
            let mut payload = vec![0x10];
            payload.extend_from_slice(f);
            assert_eq!(keyframe_size(&payload), Some((WIDTH as u16, HEIGHT as u16)));
        }
        assert_ne!(frames[0], frames[1], "the picture moves");
    }

    #[test]
    fn bad_input_is_refused_not_encoded() {
        assert!(encode_vp8(&[0; 10], 4, 4).is_err());
        assert!(vp8_chunk(b"not a webp file at all").is_none());
        assert_eq!(keyframe_size(&[]), None);
        assert_eq!(keyframe_size(&[0x10, 0x01, 0, 0]), None);
    }
}
