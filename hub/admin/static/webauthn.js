// cti-hub admin panel: security keys and passkeys (WebAuthn). No inline scripts, no third-party code.
// A form with data-webauthn-create (enrol) or data-webauthn-get (login) holds the options the hub made
// (JSON, binary values in base64url); the button asks the browser, and the answer goes back as JSON in
// the form's hidden "credential" field, binary values in base64url again.
"use strict";
(function () {
  function toBytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var raw = atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) { return Object.assign({}, d, { id: toBytes(d.id) }); });
  }

  function creationOptions(o) {
    return Object.assign({}, o, {
      challenge: toBytes(o.challenge),
      user: Object.assign({}, o.user, { id: toBytes(o.user.id) }),
      excludeCredentials: descriptors(o.excludeCredentials)
    });
  }

  function requestOptions(o) {
    return Object.assign({}, o, { challenge: toBytes(o.challenge), allowCredentials: descriptors(o.allowCredentials) });
  }

  function serialise(credential) {
    var r = credential.response;
    var response = { clientDataJSON: toText(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toText(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toText(r.authenticatorData);
      response.signature = toText(r.signature);
      if (r.userHandle) { response.userHandle = toText(r.userHandle); }
    }
    return JSON.stringify({
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: response,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults()
    });
  }

  function showError(message) {
    var box = document.getElementById("webauthn-error");
    if (box) { box.textContent = message; box.hidden = false; }
  }

  function start(form) {
    var create = form.getAttribute("data-webauthn-create");
    var options = JSON.parse(create || form.getAttribute("data-webauthn-get"));
    if (!window.PublicKeyCredential || !navigator.credentials) {
      showError("This browser does not support security keys (WebAuthn), or the panel is not on https.");
      return;
    }
    var ask = create
      ? navigator.credentials.create({ publicKey: creationOptions(options) })
      : navigator.credentials.get({ publicKey: requestOptions(options) });
    ask.then(function (credential) {
      form.querySelector("input[name=credential]").value = serialise(credential);
      form.submit();
    }).catch(function (error) {
      showError("The security key did not answer (" + (error && error.name ? error.name : error) + "). " +
        "Try again, or reload the page if five minutes have passed.");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-webauthn-create], form[data-webauthn-get]");
    var button = document.getElementById("webauthn-start");
    if (form && button) {
      button.addEventListener("click", function () { start(form); });
    }
  });
})();
