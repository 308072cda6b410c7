/* Scan a QR code with the device camera: the platform's BarcodeDetector where it exists, else jsQR (vendored).
   Frontdesk.scanQR(video, onCode) -> a stop() function. onCode(text) is called once per distinct code. */
(function () {
  "use strict";
  function scanQR(video, onCode, onError) {
    var stream = null, stopped = false, last = "", canvas = document.createElement("canvas");
    var context = canvas.getContext("2d", { willReadFrequently: true });
    var detector = ("BarcodeDetector" in window) ? new window.BarcodeDetector({ formats: ["qr_code"] }) : null;
    function found(text) { if (text && text !== last) { last = text; onCode(text); } }
    function tick() {
      if (stopped) return;
      if (video.readyState >= 2) {
        if (detector) {
          detector.detect(video).then(function (codes) { if (codes.length) found(codes[0].rawValue); }).catch(function () { detector = null; });
        } else if (window.jsQR) {
          canvas.width = video.videoWidth; canvas.height = video.videoHeight;
          context.drawImage(video, 0, 0, canvas.width, canvas.height);
          var image = context.getImageData(0, 0, canvas.width, canvas.height);
          var code = window.jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" });
          if (code) found(code.data);
        }
      }
      setTimeout(tick, 250);
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      if (onError) onError("This browser cannot use the camera here; type the code instead.");
      return function () {};
    }
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (s) { stream = s; video.srcObject = s; video.setAttribute("playsinline", ""); return video.play(); })
      .then(tick)
      .catch(function () { if (onError) onError("The camera is not available; type the code instead."); });
    return function stop() { stopped = true; if (stream) stream.getTracks().forEach(function (t) { t.stop(); }); };
  }
  window.Frontdesk = window.Frontdesk || {};
  window.Frontdesk.scanQR = scanQR;
})();
