// Camera and microphone. If the camera is refused or missing the call goes
// ahead with audio only, and the user is told why and how to fix it.

const VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

function why(error, device) {
  switch (error && error.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return `The browser was not allowed to use the ${device}. Allow it in the site settings (the icon left of the address), then reload the page.`;
    case 'NotFoundError':
    case 'OverconstrainedError':
      return `No ${device} was found. Check that it is plugged in.`;
    case 'NotReadableError':
    case 'AbortError':
      return `The ${device} is in use by another program or failed to start. Close other video programs, then reload.`;
    default:
      return `The ${device} could not be started (${error && error.name ? error.name : 'unknown error'}).`;
  }
}

/**
 * Opens camera and microphone. Resolves to
 * `{stream, hasVideo, hasAudio, warning}`; never rejects: with nothing
 * available the stream is empty and `warning` says so.
 */
export async function openLocalMedia({ cameraId } = {}) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return {
      stream: new MediaStream(),
      hasVideo: false,
      hasAudio: false,
      warning: 'This browser cannot use a camera or microphone here. Open MIU Link over https (or on this computer) in Chrome, Edge or Firefox.',
    };
  }
  const video = cameraId ? { ...VIDEO, deviceId: { exact: cameraId } } : VIDEO;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: AUDIO, video });
    return { stream, hasVideo: stream.getVideoTracks().length > 0, hasAudio: stream.getAudioTracks().length > 0, warning: null };
  } catch (videoError) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: AUDIO });
      return {
        stream,
        hasVideo: false,
        hasAudio: true,
        warning: `Audio only: ${why(videoError, 'camera')}`,
      };
    } catch (audioError) {
      return {
        stream: new MediaStream(),
        hasVideo: false,
        hasAudio: false,
        warning: `No camera or microphone: you can see and hear the other side, and use the chat, but they cannot see or hear you. ${why(audioError, 'microphone')}`,
      };
    }
  }
}

export async function listDevices(kind) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return [];
  const devices = await navigator.mediaDevices.enumerateDevices();
  return devices.filter((d) => d.kind === kind && d.deviceId);
}

export function stopStream(stream) {
  if (!stream) return;
  for (const track of stream.getTracks()) track.stop();
}

/** Opens the next camera after `currentId`, or null if there is no other. */
export async function nextCamera(currentId) {
  const cameras = await listDevices('videoinput');
  if (cameras.length < 2) return null;
  const index = cameras.findIndex((c) => c.deviceId === currentId);
  const next = cameras[(index + 1) % cameras.length];
  const stream = await navigator.mediaDevices.getUserMedia({ video: { ...VIDEO, deviceId: { exact: next.deviceId } } });
  return { track: stream.getVideoTracks()[0], label: next.label || 'the other camera' };
}
