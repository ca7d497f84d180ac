// The proxy's /view/DEVICE/CAMERA page (mirage/pages.py): the token comes from the URL's
// fragment (#token=T, never sent to a server) or query (?token=T, moved into the fragment
// at once so it leaves the address bar and history), or else from the form.
import "./titanium-video.js";

const main = document.querySelector("main");
const form = document.getElementById("ask");

function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) return fragment.get("token");
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (!token) return null;
  url.searchParams.delete("token");
  fragment.set("token", token);
  url.hash = fragment.toString();
  history.replaceState(null, "", url);
  return token;
}

function play(token) {
  form.hidden = true;
  document.querySelector("titanium-video")?.remove();
  const video = document.createElement("titanium-video");
  video.setAttribute("mirage-server", location.origin);
  video.setAttribute("device", main.dataset.device);
  video.setAttribute("camera-id", main.dataset.camera);
  video.setAttribute("token", token);
  main.appendChild(video);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = new FormData(form).get("token");
  if (!token) return;
  history.replaceState(null, "", `#${new URLSearchParams({ token })}`);
  play(token);
});

const token = takeToken();
if (token) play(token);
else form.hidden = false;
