// thinktree's tree viewer. Reads the JSON block #data (written by TreeView::to_html),
// lays the tree out top-down (leaves in slots, each parent centred over its children),
// draws it as SVG and handles fold, search, zoom and pan. No network, no libraries.
(function () {
  'use strict';
  var SVGNS = 'http://www.w3.org/2000/svg';
  var D = JSON.parse(document.getElementById('data').textContent);
  // Two layouts: 'tree' (a diagram, root on top, children in a row below it) reads best
  // while the whole tree fits the screen; 'outline' (one row per node, children indented
  // under their parent) keeps every step readable however bushy the tree: a 100-node MCTS
  // tree has ~40 nodes at one depth, 8,000 px as a diagram.
  var mode = 'tree';
  var W = 184;            // node width in the diagram
  var OW = 600;           // node width in the outline
  var INDENT = 30;        // outline indent per depth
  var GX = 12;            // horizontal gap between neighbours
  var GY = 44;            // vertical gap between depths
  var OY = 10;            // vertical gap between outline rows
  var CHARS = 30;         // characters per text line at W (set per layout)
  var LINE = 14;          // text line height
  var STEP_LINES = 3;     // lines shown for a one-step node
  var CHAIN_LINES = 18;   // lines shown for a chain (several steps at once)

  var nodes = D.nodes;
  var byId = new Map();
  nodes.forEach(function (n) { n.kids = []; n.folded = false; byId.set(n.id, n); });
  nodes.forEach(function (n) {
    if (n.parent !== null && byId.has(n.parent) && n.parent !== n.id) byId.get(n.parent).kids.push(n);
  });
  var root = nodes.find(function (n) { return n.parent === null; }) || nodes[0];
  var chosen = new Set(D.chosen);
  var query = '';
  var matchList = [];
  var matchAt = -1;
  var selected = null;

  function el(name, attrs, parent) {
    var e = document.createElementNS(SVGNS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function html(tag, text, parent, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v, d) { return v === null || v === undefined ? '–' : Number(v).toFixed(d); }

  // Word-wraps text into lines of at most CHARS characters.
  function wrap(text, maxLines) {
    var out = [];
    var paragraphs = String(text).split('\n');
    for (var p = 0; p < paragraphs.length && out.length <= maxLines; p++) {
      var words = paragraphs[p].split(/\s+/).filter(Boolean);
      var line = '';
      for (var i = 0; i < words.length; i++) {
        var w = words[i];
        while (w.length > CHARS) { // a very long word is cut
          if (line) { out.push(line); line = ''; }
          out.push(w.slice(0, CHARS));
          w = w.slice(CHARS);
        }
        if (!line) line = w;
        else if (line.length + 1 + w.length <= CHARS) line += ' ' + w;
        else { out.push(line); line = w; }
      }
      if (line || !words.length) out.push(line);
    }
    while (out.length && out[out.length - 1] === '') out.pop();
    if (out.length > maxLines) {
      out = out.slice(0, maxLines);
      var last = out[maxLines - 1];
      out[maxLines - 1] = (last.length > CHARS - 1 ? last.slice(0, CHARS - 1) : last) + '…';
    }
    return out;
  }

  function label(n) { return n === root ? D.question : n.text; }
  function statsLine(n) {
    var parts = [];
    if (n.visits > 0) parts.push('N=' + n.visits);
    if (n.mean !== null && n.mean !== undefined) parts.push('Q=' + fmt(n.mean, 2));
    if (n !== root && n.added <= 1) parts.push('p=' + fmt(n.prior, 2));
    if (n.value !== null && n.value !== undefined) parts.push('s=' + fmt(n.value, 2));
    if (n.tokens > 0) parts.push(n.tokens + ' tok');
    return parts.join('  ');
  }
  function answerLine(n) {
    if (n.answer === null || n.answer === undefined) return n.terminal ? 'ended, no answer' : '';
    var mark = n.right === true ? '  ✓' : n.right === false ? '  ✗' : '';
    return 'answer: ' + n.answer + mark;
  }
  function nodeWidth() { return mode === 'tree' ? W : OW; }
  // Each node's text lines and box height for the current layout.
  function prepare() {
    CHARS = mode === 'tree' ? 27 : 96;
    nodes.forEach(function (n) {
      var maxLines = n === root ? 3 : (n.added > 1 ? CHAIN_LINES : STEP_LINES);
      n.lines = wrap(label(n) || (n === root ? '' : '(empty step)'), maxLines);
      if (!n.lines.length) n.lines = [''];
      var extra = mode === 'tree' && answerLine(n) ? 1 : 0;
      n.h = 10 + LINE * (n.lines.length + 1 + extra) + 4;
    });
  }

  function visibleKids(n) { return n.folded ? [] : n.kids; }

  // Top-down tidy layout. Each subtree keeps its contour (leftmost and rightmost x per
  // depth below its root); siblings are packed left to right as close as their contours
  // allow, and a parent sits over the middle of its first and last child. A leaf high in
  // one subtree leaves room under it for a deeper neighbour, which keeps MCTS trees (leaves
  // at every depth) several times narrower than one column per leaf. Iterative: trees
  // can be deep. Each depth is as tall as its tallest node.
  function layout() { return mode === 'tree' ? layoutTree() : layoutOutline(); }

  // Outline: pre-order rows, x by depth.
  function layoutOutline() {
    var order = [];
    var stack = [[root, 0]];
    var y = 0, depthMax = 0;
    while (stack.length) {
      var item = stack.pop();
      var n = item[0], d = item[1];
      order.push(n);
      n.x = d * INDENT;
      n.y = y;
      y += n.h + OY;
      depthMax = Math.max(depthMax, d);
      var ks = visibleKids(n);
      for (var i = ks.length - 1; i >= 0; i--) stack.push([ks[i], d + 1]);
    }
    return { shown: order, width: depthMax * INDENT + OW, height: Math.max(y - OY, 1) };
  }

  function layoutTree() {
    var heights = [];
    var order = [];
    var stack = [[root, 0]];
    while (stack.length) {
      var item = stack.pop();
      var n = item[0], d = item[1];
      n.depthShown = d;
      order.push(n);
      heights[d] = Math.max(heights[d] || 0, n.h);
      var ks = visibleKids(n);
      for (var i = ks.length - 1; i >= 0; i--) stack.push([ks[i], d + 1]);
    }
    var ys = [0];
    for (var d2 = 1; d2 < heights.length; d2++) ys[d2] = ys[d2 - 1] + heights[d2 - 1] + GY;
    var pitch = W + GX;
    // Reverse pre-order reaches every child before its parent.
    for (var k = order.length - 1; k >= 0; k--) {
      var p = order[k];
      p.y = ys[p.depthShown];
      var ch = visibleKids(p);
      if (!ch.length) { p.cl = [0]; p.cr = [0]; continue; }
      var accL = ch[0].cl.slice(), accR = ch[0].cr.slice();
      var offs = [0];
      for (var c = 1; c < ch.length; c++) {
        var L = ch[c].cl, R = ch[c].cr;
        var o = -Infinity;
        for (var e = 0; e < Math.min(L.length, accR.length); e++) o = Math.max(o, accR[e] - L[e] + pitch);
        offs.push(o);
        for (var f = 0; f < L.length; f++) {
          if (f < accR.length) { accR[f] = R[f] + o; }
          else { accL.push(L[f] + o); accR.push(R[f] + o); }
        }
      }
      var mid = (offs[0] + offs[offs.length - 1]) / 2;
      p.offs = offs.map(function (v) { return v - mid; });
      p.cl = [0].concat(accL.map(function (v) { return v - mid; }));
      p.cr = [0].concat(accR.map(function (v) { return v - mid; }));
      ch.forEach(function (q) { q.cl = q.cr = null; });
    }
    // Absolute positions, top down, then shifted so the leftmost node is at 0.
    root.x = 0;
    var minX = 0, maxX = 0;
    order.forEach(function (m) {
      var kids = visibleKids(m);
      for (var i = 0; i < kids.length; i++) kids[i].x = m.x + m.offs[i];
      minX = Math.min(minX, m.x);
      maxX = Math.max(maxX, m.x);
    });
    order.forEach(function (m) { m.x -= minX; });
    root.cl = root.cr = null;
    var height = ys[ys.length - 1] + heights[heights.length - 1];
    return { shown: order, width: maxX - minX + W, height: height };
  }

  var svg = document.getElementById('tree');
  var viewport = document.getElementById('viewport');
  var gEdges = document.getElementById('edges');
  var gNodes = document.getElementById('nodes');
  var view = { k: 1, x: 0, y: 0 };
  var box = { width: 0, height: 0 };

  function applyView() {
    viewport.setAttribute('transform', 'translate(' + view.x + ',' + view.y + ') scale(' + view.k + ')');
  }

  // Text is clipped to its box (a line of wide glyphs can outgrow the width estimate).
  var defs = el('defs', {}, svg);
  var clip = el('clipPath', { id: 'clip-text', clipPathUnits: 'userSpaceOnUse' }, defs);
  var clipRect = el('rect', { x: 0, y: 0, width: W - 6, height: 100000 }, clip);

  function render() {
    clipRect.setAttribute('width', nodeWidth() - 6);
    var lay = layout();
    box = lay;
    gEdges.textContent = '';
    gNodes.textContent = '';
    lay.shown.forEach(function (n) {
      visibleKids(n).forEach(function (c) {
        var d;
        if (mode === 'tree') {
          var x1 = n.x + W / 2, y1 = n.y + n.h, x2 = c.x + W / 2, y2 = c.y;
          var my = (y1 + y2) / 2;
          d = 'M' + x1 + ',' + y1 + ' C' + x1 + ',' + my + ' ' + x2 + ',' + my + ' ' + x2 + ',' + y2;
        } else {
          var ex = n.x + INDENT / 2, ey = c.y + 12;
          d = 'M' + ex + ',' + (n.y + n.h) + ' L' + ex + ',' + ey + ' L' + c.x + ',' + ey;
        }
        el('path', {
          d: d,
          'class': 'edge' + (chosen.has(n.id) && chosen.has(c.id) ? ' chosen' : '')
        }, gEdges);
      });
    });
    lay.shown.forEach(function (n) {
      var cls = 'node';
      if (n === root) cls += ' root';
      if (chosen.has(n.id)) cls += ' chosen';
      if (n.terminal) cls += ' terminal';
      if (n.right === true) cls += ' right';
      if (n.right === false) cls += ' wrong';
      if (query && matches(n)) cls += ' match';
      if (selected === n) cls += ' selected';
      var g = el('g', { 'class': cls, transform: 'translate(' + n.x + ',' + n.y + ')', 'data-id': n.id }, gNodes);
      el('title', {}, g).textContent = (n === root ? 'Question: ' + D.question : n.text) +
        (n.answer !== null && n.answer !== undefined ? '\nanswer: ' + n.answer : '');
      el('rect', { 'class': 'box', width: nodeWidth(), height: n.h, rx: 5 }, g);
      var y = 16;
      n.lines.forEach(function (line) {
        var t = el('text', { x: 7, y: y, 'clip-path': 'url(#clip-text)' }, g);
        t.textContent = line;
        y += LINE;
      });
      var st = el('text', { x: 7, y: y, 'class': 'stats', 'clip-path': 'url(#clip-text)' }, g);
      st.textContent = n === root ? (D.method ? D.method + ' · ' : '') + nodes.length + ' nodes' : statsLine(n);
      var a = answerLine(n);
      if (a && mode === 'outline') {
        var oa = el('tspan', { 'class': 'ans', dx: 14 }, st);
        oa.textContent = a;
        a = '';
      }
      y += LINE;
      if (a) {
        var at = el('text', { x: 7, y: y, 'class': 'ans', 'clip-path': 'url(#clip-text)' }, g);
        at.textContent = a;
      }
      g.addEventListener('click', function (ev) { ev.stopPropagation(); select(n); });
      g.addEventListener('mouseenter', function () { if (!pinned) describe(n); });
      g.addEventListener('mouseleave', function () { if (!pinned && selected) describe(selected); });
      if (n.kids.length) {
        var fx = mode === 'tree' ? W / 2 : -9, fy = mode === 'tree' ? n.h + 8 : 12;
        var f = el('g', { 'class': 'fold', transform: 'translate(' + fx + ',' + fy + ')' }, g);
        el('circle', { r: 7 }, f);
        el('text', { y: 4 }, f).textContent = n.folded ? '+' : '−';
        if (n.folded) {
          el('text', { x: 12, y: 4, 'class': 'more' }, f).textContent = descendants(n) + ' hidden';
        }
        f.addEventListener('click', function (ev) { ev.stopPropagation(); n.folded = !n.folded; render(); });
      }
    });
    document.body.setAttribute('data-shown', String(lay.shown.length));
  }

  function descendants(n) {
    var count = 0, stack = n.kids.slice();
    while (stack.length) { var m = stack.pop(); count++; Array.prototype.push.apply(stack, m.kids); }
    return count;
  }

  function pathTo(n) {
    var path = [];
    for (var m = n; m; m = m.parent === null ? null : byId.get(m.parent)) {
      path.unshift(m);
      if (path.length > nodes.length) break;
    }
    return path;
  }

  // Clicking pins a node's details; hovering shows another's until the mouse leaves.
  var pinned = false;
  function select(n) {
    selected = n;
    pinned = true;
    describe(n);
    render();
  }

  function describe(n) {
    var d = document.getElementById('detail');
    d.textContent = '';
    if (n === root) {
      html('h2', 'Question', d);
      html('pre', D.question, d);
    } else {
      html('h2', n.added > 1 ? 'Chain (' + n.added + ' steps)' : 'Step', d);
      html('pre', n.text, d);
    }
    var t = html('table', null, d);
    function row(k, v) { var r = html('tr', null, t); html('td', k, r); html('td', v, r); }
    row('node', '#' + n.id + ' at depth ' + (pathTo(n).length - 1));
    if (n.visits > 0) row('visits', String(n.visits));
    if (n.mean !== null && n.mean !== undefined) row('mean value', fmt(n.mean, 4));
    if (n !== root) row('prior', fmt(n.prior, 4));
    if (n.value !== null && n.value !== undefined) row('score', fmt(n.value, 4));
    if (n.tokens > 0) row('tokens', String(n.tokens));
    if (n.terminal) row('finished', 'yes');
    if (n.answer !== null && n.answer !== undefined) {
      row('answer', n.answer + (n.right === true ? ' (right)' : n.right === false ? ' (wrong)' : ''));
    }
    if (chosen.has(n.id)) row('on chosen path', 'yes');
    var path = pathTo(n).slice(1);
    if (path.length > 1) {
      html('h2', 'Path from the question', d);
      var ol = html('ol', null, d);
      path.forEach(function (m) { html('li', m.text, ol); });
    }
  }

  function matches(n) {
    if (!query) return false;
    var text = (n === root ? D.question : n.text) + ' ' + (n.answer || '');
    return text.toLowerCase().indexOf(query) >= 0;
  }

  function search(q) {
    query = q.trim().toLowerCase();
    matchList = query ? nodes.filter(matches) : [];
    matchAt = -1;
    // Unfold every ancestor of a match so all of them are drawn.
    matchList.forEach(function (n) {
      pathTo(n).slice(0, -1).forEach(function (a) { a.folded = false; });
    });
    document.getElementById('matches').textContent =
      query ? matchList.length + (matchList.length === 1 ? ' match' : ' matches') : '';
    render();
  }

  function centreOn(n) {
    var r = svg.getBoundingClientRect();
    view.k = Math.max(view.k, 0.8);
    view.x = mode === 'tree' ? r.width / 2 - (n.x + W / 2) * view.k : 24 - n.x * view.k;
    view.y = r.height / 3 - n.y * view.k;
    applyView();
  }

  function fit() {
    var r = svg.getBoundingClientRect();
    var k = Math.min((r.width - 40) / box.width, (r.height - 40) / box.height, 1);
    view.k = k;
    view.x = (r.width - box.width * k) / 2;
    view.y = 20;
    applyView();
  }

  // The first view: the whole tree when it stays readable, otherwise life size with the
  // root at the top and the chosen path in the middle of the screen.
  function initialView() {
    var r = svg.getBoundingClientRect();
    var k = Math.min((r.width - 40) / box.width, (r.height - 40) / box.height, 1);
    if (mode === 'tree' && k >= 0.6) { fit(); return; }
    if (mode === 'tree') { setMode('outline'); return; }
    view.k = 1;
    view.x = 24;
    view.y = 16;
    applyView();
  }

  function setMode(m) {
    mode = m;
    document.getElementById('layout').textContent = mode === 'tree' ? 'outline' : 'diagram';
    document.body.setAttribute('data-layout', mode);
    prepare();
    render();
    initialView();
  }

  // Header: question, method, answer, gold, tokens, legend.
  (function header() {
    var h = document.getElementById('head');
    html('h1', D.title, h);
    html('p', D.question, h, 'question');
    var facts = html('div', null, h, 'facts');
    if (D.method) html('span', 'method: ' + D.method, facts);
    html('span', 'answer: ' + (D.answer === null ? 'none' : D.answer), facts,
      D.right === true ? 'right' : D.right === false ? 'wrong' : '');
    if (D.gold !== null) html('span', 'gold: ' + D.gold, facts);
    if (D.generated !== null) html('span', 'tokens: ' + D.generated + ' generated, ' + D.computed + ' computed', facts);
    html('span', nodes.length + ' nodes', facts);
    var legend = html('div', null, h, 'legend');
    legend.innerHTML = 'Orange border: chosen path. Thick border: finished.' +
      (D.gold !== null ? '<i style="background:#dcf3e4"></i>right answer<i style="background:#fbe3e0"></i>wrong answer' : '') +
      '<i style="background:#fff3a8"></i>search match. N visits, Q mean value, p prior, s score.';
  })();

  // Zoom on the wheel around the cursor; pan by dragging.
  svg.addEventListener('wheel', function (ev) {
    ev.preventDefault();
    var r = svg.getBoundingClientRect();
    var px = ev.clientX - r.left, py = ev.clientY - r.top;
    var k = Math.min(3, Math.max(0.02, view.k * Math.exp(-ev.deltaY * 0.0015)));
    view.x = px - (px - view.x) * (k / view.k);
    view.y = py - (py - view.y) * (k / view.k);
    view.k = k;
    applyView();
  }, { passive: false });
  var drag = null;
  svg.addEventListener('mousedown', function (ev) {
    drag = { x: ev.clientX - view.x, y: ev.clientY - view.y };
    svg.classList.add('dragging');
  });
  window.addEventListener('mousemove', function (ev) {
    if (!drag) return;
    view.x = ev.clientX - drag.x;
    view.y = ev.clientY - drag.y;
    applyView();
  });
  window.addEventListener('mouseup', function () { drag = null; svg.classList.remove('dragging'); });

  var input = document.getElementById('search');
  input.addEventListener('input', function () { search(input.value); });
  input.addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter' && matchList.length) {
      matchAt = (matchAt + 1) % matchList.length;
      select(matchList[matchAt]);
      centreOn(matchList[matchAt]);
    }
  });
  document.getElementById('fit').addEventListener('click', fit);
  document.getElementById('one').addEventListener('click', function () { view.k = 1; centreOn(selected || root); });
  document.getElementById('expand').addEventListener('click', function () {
    nodes.forEach(function (n) { n.folded = false; });
    render();
  });
  document.getElementById('focus').addEventListener('click', function () {
    nodes.forEach(function (n) { n.folded = !chosen.has(n.id) && n.kids.length > 0; });
    // Keep the chosen nodes' own children visible, folded below them.
    render();
    if (mode === 'tree') fit();
  });

  document.getElementById('layout').addEventListener('click', function () {
    setMode(mode === 'tree' ? 'outline' : 'tree');
  });
  // A link may ask for a layout: #layout=tree or #layout=outline (default: the diagram
  // when it fits the screen readably, else the outline).
  var params = new URLSearchParams(window.location.hash.slice(1));
  var wanted = params.get('layout');
  mode = wanted === 'outline' ? 'outline' : 'tree';
  prepare();
  render();
  document.getElementById('layout').textContent = mode === 'tree' ? 'outline' : 'diagram';
  document.body.setAttribute('data-layout', mode);
  if (wanted !== 'tree') initialView(); else fit();
  // A link may carry a search and a view: file.html#q=text&view=fit
  if (params.get('q')) {
    input.value = params.get('q');
    search(input.value);
    if (matchList.length) { matchAt = 0; select(matchList[0]); }
  }
  if (params.get('view') === 'fit') fit();
  document.body.setAttribute('data-ready', '1');
})();
