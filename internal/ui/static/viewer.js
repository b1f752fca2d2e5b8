// kafkagate live viewer: polls /ui/api/records for the page's topic and
// shows each record as stored beside its decrypted form. Every value is
// inserted as text (textContent), never as HTML.
(function () {
  'use strict';

  var body = document.body;
  var topic = body.dataset.topic;
  var authOn = body.dataset.auth === 'true';
  var cluster = '';
  var poll = parseInt(body.dataset.poll, 10) || 1000;
  var MAX_RECORDS = 100;
  var token = '';
  try { token = sessionStorage.getItem('kafkagate.token') || ''; } catch (e) { /* storage off */ }

  var authForm = document.getElementById('auth');
  if (authForm) {
    var input = document.getElementById('token');
    input.value = token;
    authForm.addEventListener('submit', function (ev) {
      ev.preventDefault();
      token = input.value.trim();
      try { sessionStorage.setItem('kafkagate.token', token); } catch (e) { /* storage off */ }
      loadTopics();
      if (!topic) { return; }
      cursor = '';
      seen.clear();
      list.textContent = '';
      setStatus('Token set.', '');
    });
  }

  function headers(extra) {
    var h = extra || {};
    if (token) { h.Authorization = 'Bearer ' + token; }
    return h;
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }

  // errorText is the message of an error answer: the viewer's {error} or
  // the API's {error_code, message}.
  function errorText(j, r) {
    return (j && (j.error || j.message)) || r.statusText;
  }

  // loadTopics fills the topic picker (and the intro's list) with the
  // topics the credentials may see: the page itself holds none.
  function loadTopics() {
    var dl = document.getElementById('topic-list');
    var ul = document.getElementById('topics');
    fetch('/ui/api/topics', { headers: headers(), cache: 'no-store' }).then(function (r) {
      return r.json().then(function (j) { return { r: r, j: j }; });
    }).then(function (x) {
      if (!x.r.ok) {
        if (ul) {
          ul.textContent = '';
          ul.appendChild(el('li', '', x.r.status === 401 ? 'Authentication required: paste a bearer token above.' : errorText(x.j, x.r)));
        }
        return;
      }
      var ts = x.j.topics || [];
      dl.textContent = '';
      ts.forEach(function (t) { var o = el('option'); o.value = t; dl.appendChild(o); });
      if (ul) {
        ul.textContent = '';
        ts.forEach(function (t) {
          var li = el('li');
          var a = el('a', '', t);
          a.href = '/ui/?topic=' + encodeURIComponent(t);
          li.appendChild(a);
          ul.appendChild(li);
        });
        if (!ts.length) { ul.appendChild(el('li', '', 'No topics yet.')); }
      }
    }).catch(function () { /* the status line reports an unreachable gateway */ });
  }

  loadTopics();
  if (!topic) { return; }

  var list = document.getElementById('records');
  var empty = document.getElementById('empty');
  var statusEl = document.getElementById('status');
  var rotateBtn = document.getElementById('rotate');
  var produceBtn = document.getElementById('produce');
  var cursor = '';
  var seen = new Set();
  var last = null;
  var policyShown = false;

  function setStatus(text, cls) {
    statusEl.textContent = text;
    statusEl.className = 'status' + (cls ? ' ' + cls : '');
  }

  function time(ts) {
    var d = new Date(ts);
    return isNaN(d) ? '' : d.toLocaleTimeString();
  }

  function chip(k) {
    var c = el('span', 'chip');
    var v = k.version || 0;
    if (v >= 2) { c.className += v <= 3 ? ' v' + v : ' vn'; }
    var what = k.field ? k.field + ' · ' : '';
    what += k.mode + ' ';
    what += k.domain ? k.domain : (k.key || '');
    c.appendChild(document.createTextNode(what + ' '));
    c.appendChild(el('span', 'v', v ? 'v' + v : 'v?'));
    return c;
  }

  function storedPane(rec) {
    var s = rec.stored;
    var pane = el('div', 'pane stored');
    var meta = el('div', 'meta');
    meta.appendChild(document.createTextNode('partition ' + s.partition + ' · offset '));
    meta.appendChild(el('b', '', String(s.offset)));
    meta.appendChild(document.createTextNode(' · ' + time(s.timestamp) + ' · key '));
    meta.appendChild(el('b', '', s.key === null ? (rec.stored_withheld || s.key_withheld ? '(withheld)' : 'null') : s.key));
    meta.appendChild(document.createTextNode(' · ' + s.value_size + ' B'));
    pane.appendChild(meta);
    var chips = el('div', 'chips');
    chips.appendChild(el('span', 'chip fmt', s.format));
    (s.keys || []).forEach(function (k) { chips.appendChild(chip(k)); });
    pane.appendChild(chips);
    if (rec.stored_withheld) {
      pane.appendChild(el('p', 'note', 'Stored in clear: its content is shown only to principals with consume:' + topic + '.'));
    } else {
      pane.appendChild(valuePre(s.value === null ? 'null' : s.value, s.value_binary, s.truncated));
    }
    if (s.headers && s.headers.length) {
      var dl = el('dl', 'headers');
      s.headers.forEach(function (h) {
        var row = el('div');
        row.appendChild(el('dt', '', h.name));
        var hv = h.value;
        if (hv.length > 160) { hv = hv.slice(0, 160) + ' …'; }
        row.appendChild(el('dd', '', rec.stored_withheld || h.withheld ? '(withheld)' : hv));
        dl.appendChild(row);
      });
      pane.appendChild(dl);
    }
    return pane;
  }

  // valuePre shows a record value, marked when it is base64 or cut short.
  function valuePre(v, binary, truncated) {
    if (binary) { v = '(binary, base64) ' + v; }
    if (truncated) { v += ' …'; }
    return el('pre', 'value', v);
  }

  function decryptedPane(rec, reason) {
    var d = rec.decrypted;
    var pane = el('div', 'pane decrypted');
    if (!d) {
      pane.className += ' withheld';
      pane.appendChild(el('p', 'note', 'Plaintext withheld: ' + (reason || 'no consume right for this topic') + '.'));
      return pane;
    }
    var meta = el('div', 'meta');
    meta.appendChild(el('span', 'badge ' + d.status, d.status));
    if (d.error) { meta.appendChild(document.createTextNode(' ' + d.error)); }
    pane.appendChild(meta);
    if (d.status === 'file_chunk') {
      pane.appendChild(el('p', 'note', 'One chunk of an encrypted file: files are reassembled and checked by receive-dir, not record by record.'));
    } else if (d.value !== null && d.value !== undefined) {
      pane.appendChild(valuePre(d.value, d.binary, d.truncated));
    }
    if (d.fields && d.fields.length) {
      var ul = el('ul', 'fieldstatus');
      d.fields.forEach(function (f) {
        var how = f.mode + (f.domain ? ' ' + f.domain : (f.key ? ' ' + f.key : '')) + (f.key_version ? ' v' + f.key_version : '');
        var li = el('li', f.status === 'ok' ? '' : 'bad', f.path + ': ' + f.status + ' (' + how + ')' + (f.error ? ' ' + f.error : ''));
        ul.appendChild(li);
      });
      pane.appendChild(ul);
    }
    return pane;
  }

  function add(rec, reason, fresh) {
    var id = rec.stored.partition + ':' + rec.stored.offset;
    if (seen.has(id)) { return; }
    seen.add(id);
    var li = el('li', 'record' + (fresh ? ' fresh' : ''));
    li.dataset.id = id;
    li.appendChild(storedPane(rec));
    li.appendChild(decryptedPane(rec, reason));
    list.insertBefore(li, list.firstChild);
    if (fresh) { setTimeout(function () { li.classList.remove('fresh'); }, 2500); }
    while (list.children.length > MAX_RECORDS) {
      seen.delete(list.lastChild.dataset.id);
      list.removeChild(list.lastChild);
    }
  }

  // showPolicy renders the topic's policy from /ui/api/records.
  function showPolicy(p) {
    var box = document.getElementById('policy');
    box.textContent = '';
    if (!p) {
      box.appendChild(el('p', '', 'No policy: the gateway does not produce to this topic. Its records were written by other clients and are shown as stored.'));
      return;
    }
    var line = el('p');
    line.appendChild(document.createTextNode('Policy '));
    line.appendChild(el('b', '', p.mode));
    if (p.key) {
      line.appendChild(document.createTextNode(' · key '));
      line.appendChild(el('code', '', p.key));
    }
    box.appendChild(line);
    if (!p.fields || !p.fields.length) { return; }
    var table = el('table', 'fields');
    var head = el('tr');
    ['field', 'mode', ''].forEach(function (h) { head.appendChild(el('th', '', h)); });
    table.appendChild(el('thead')).appendChild(head);
    var tbody = el('tbody');
    p.fields.forEach(function (f) {
      var tr = el('tr');
      tr.appendChild(el('td')).appendChild(el('code', '', f.path));
      tr.appendChild(el('td')).appendChild(el('span', 'mode mode-' + f.mode, f.mode));
      tr.appendChild(el('td', '', f.detail || ''));
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    box.appendChild(table);
  }

  function tick() {
    var url = '/ui/api/records?topic=' + encodeURIComponent(topic) + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
    var first = cursor === '';
    fetch(url, { headers: headers(), cache: 'no-store' }).then(function (r) {
      return r.json().then(function (j) { return { r: r, j: j }; });
    }).then(function (x) {
      if (x.r.status === 401) {
        setStatus(authOn ? 'Authentication required: paste a bearer token above.' : errorText(x.j, x.r), 'warn');
        return;
      }
      if (!x.r.ok) { setStatus(errorText(x.j, x.r), 'bad'); return; }
      var j = x.j;
      last = j;
      cluster = j.cluster_id || '';
      if (!policyShown) { showPolicy(j.policy); policyShown = true; }
      var parts = Object.keys(j.cursor || {}).map(function (p) { return p + ':' + j.cursor[p]; });
      cursor = parts.join(',');
      j.records.forEach(function (rec) { add(rec, j.withheld, !first); });
      empty.hidden = list.children.length > 0;
      if (rotateBtn) {
        rotateBtn.disabled = !j.can_rotate;
        rotateBtn.title = j.can_rotate ? 'Adds a key version: new records use it, old ones still decrypt' : 'Needs the admin right';
      }
      if (produceBtn) { produceBtn.disabled = !j.can_produce || !cluster; }
      var who = 'Watching ' + topic + ' as ' + j.principal + (j.can_decrypt ? '' : ' (no consume right: plaintext withheld)');
      setStatus(j.exists ? who + ' · updated ' + new Date().toLocaleTimeString() : 'Topic ' + topic + ' does not exist yet: waiting for its first record.', j.can_decrypt ? 'ok' : 'warn');
    }).catch(function (e) {
      setStatus('Gateway unreachable: ' + e.message, 'bad');
    }).then(function () {
      setTimeout(tick, poll);
    });
  }

  if (rotateBtn) {
    rotateBtn.addEventListener('click', function () {
      rotateBtn.disabled = true;
      fetch('/ui/api/rotate', {
        method: 'POST',
        headers: headers({ 'Content-Type': 'application/json' }),
        body: JSON.stringify({ topic: topic })
      }).then(function (r) {
        return r.json().then(function (j) { return { r: r, j: j }; });
      }).then(function (x) {
        if (!x.r.ok) { setStatus('Rotation refused: ' + errorText(x.j, x.r), 'bad'); return; }
        var what = (x.j.rotated || []).map(function (k) {
          return (k.kind === 'fpe' ? 'FPE domain ' + k.domain : 'transit key ' + k.key) + ' → v' + k.version;
        }).join(', ');
        setStatus('Rotated ' + what + '. New records use the new version; older ones still decrypt.', 'ok');
      }).catch(function (e) {
        setStatus('Rotation failed: ' + e.message, 'bad');
      }).then(function () {
        rotateBtn.disabled = !(last && last.can_rotate);
      });
    });
  }

  if (produceBtn) {
    produceBtn.addEventListener('click', function () {
      var data;
      try { data = JSON.parse(document.getElementById('sample').value); } catch (e) {
        setStatus('The test record is not valid JSON: ' + e.message, 'bad');
        return;
      }
      produceBtn.disabled = true;
      var url = '/v3/clusters/' + encodeURIComponent(cluster) + '/topics/' + encodeURIComponent(topic) + '/records';
      fetch(url, {
        method: 'POST',
        headers: headers({ 'Content-Type': 'application/json' }),
        body: JSON.stringify({ key: { type: 'STRING', data: 'viewer-test' }, value: { type: 'JSON', data: data } })
      }).then(function (r) {
        return r.json().then(function (j) { return { r: r, j: j }; });
      }).then(function (x) {
        if (!x.r.ok || (x.j.error_code && x.j.error_code !== 200)) {
          setStatus('Produce refused: ' + (x.j.message || x.r.statusText), 'bad');
          return;
        }
        setStatus('Produced to partition ' + x.j.partition_id + ' at offset ' + x.j.offset + '.', 'ok');
      }).catch(function (e) {
        setStatus('Produce failed: ' + e.message, 'bad');
      }).then(function () {
        produceBtn.disabled = !(last && last.can_produce);
      });
    });
  }

  tick();
}());
