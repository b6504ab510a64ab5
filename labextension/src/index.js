// k2nb front end: turns the tool calls of a running %%k2think cell into real notebook cells.
//
// Why a comm and not ipylab / set_next_input: the kernel is busy for the whole run, so nothing the
// front end sends reaches it, but comm messages *from* the kernel travel on IOPub and arrive at once.
// The kernel names the anchor (the %%k2think cell's id, which JupyterLab sent in the execute_request
// metadata) and every inserted cell gets its own id, so inserts land in order below the right cell
// even when the user has moved on to another cell or another notebook.
//
// Protocol (comm target "k2nb.cells", both directions may open it):
//   front end -> kernel   {op: "hello", client, version, app}        on every kernel (re)connection
//   kernel -> front end   {op: "hello"}  -> answered with {op: "hello", client, version, app}
//   kernel -> front end   {op: "begin", anchor, run, replace}         a run starts below `anchor`
//                         {op: "insert", anchor, run, cell: {id, source, metadata, outputs, execution_count}}
//                         {op: "update", cell_id, outputs?, execution_count?, metadata?}
//   front end -> kernel   {op: "ack", seq, ok, error?}                 (only read when the kernel is idle)
import { INotebookTracker } from '@jupyterlab/notebook';

const TARGET = 'k2nb.cells';
const VERSION = '0.1.0';
const TOOL_CLASS = 'k2nb-tool-cell';

function randomId() {
  return Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
}

const CLIENT = randomId(); // one per browser tab; the kernel keeps one comm per client

function cellIndex(model, id) {
  const cells = model.cells;
  for (let i = 0; i < cells.length; i++) {
    if (cells.get(i).id === id) {
      return i;
    }
  }
  return -1;
}

function isK2nbCell(cellModel, anchor) {
  const meta = cellModel.getMetadata ? cellModel.getMetadata('k2nb') : undefined;
  return !!meta && (anchor === undefined || meta.anchor === anchor);
}

// Marks the cells k2nb inserted, so they read as the model's work (CSS in style/index.css).
function tagCells(panel) {
  for (const cell of panel.content.widgets) {
    cell.toggleClass(TOOL_CLASS, isK2nbCell(cell.model));
  }
}

class NotebookChannel {
  constructor(panel) {
    this.panel = panel;
    this.kernel = null;
    this.comms = new Set();
    this.lastOfRun = new Map(); // run id -> id of the last cell inserted for it (keeps calls in order)
    this.pending = new Map(); // cell id -> update received before its insert was applied
    panel.sessionContext.kernelChanged.connect((_, change) => this.connect(change.newValue));
    panel.sessionContext.ready.then(() => this.connect(panel.sessionContext.session?.kernel));
    panel.content.model?.cells.changed.connect(() => setTimeout(() => tagCells(panel), 0));
    panel.context.ready.then(() => tagCells(panel));
  }

  connect(kernel) {
    if (!kernel || kernel === this.kernel) {
      return;
    }
    this.kernel = kernel;
    kernel.registerCommTarget(TARGET, (comm, msg) => this.adopt(comm, msg.content.data));
    // A restarted kernel forgets us; say hello again once it is up.
    let restarting = false;
    kernel.statusChanged.connect((_, status) => {
      if (status === 'restarting' || status === 'autorestarting') {
        restarting = true;
      } else if (restarting && status === 'idle') {
        restarting = false;
        this.hello(kernel);
      }
    });
    this.hello(kernel);
  }

  // Front-end-initiated handshake: a kernel with k2nb loaded keeps the comm, one without closes it.
  hello(kernel) {
    if (kernel.isDisposed) {
      return;
    }
    try {
      const comm = kernel.createComm(TARGET);
      this.listen(comm);
      comm.open(this.helloData());
    } catch (err) {
      console.warn('k2nb: could not open the cell channel', err);
    }
  }

  helloData() {
    return { op: 'hello', client: CLIENT, version: VERSION, app: 'jupyterlab' };
  }

  // Kernel-initiated handshake (k2nb was loaded after this notebook connected).
  adopt(comm, data) {
    this.listen(comm);
    if (data && data.op === 'hello') {
      comm.send(this.helloData());
    } else if (data) {
      this.handle(data, comm);
    }
  }

  listen(comm) {
    this.comms.add(comm);
    comm.onMsg = msg => this.handle(msg.content.data, comm);
    comm.onClose = () => this.comms.delete(comm);
  }

  handle(data, comm) {
    let error = null;
    try {
      switch (data.op) {
        case 'begin':
          this.begin(data);
          break;
        case 'insert':
          this.insert(data);
          break;
        case 'update':
          this.update(data);
          break;
        default:
          break;
      }
    } catch (err) {
      error = String(err);
      console.error('k2nb: could not apply', data.op, err);
    }
    if (data.seq !== undefined && !comm.isDisposed) {
      comm.send({ op: 'ack', seq: data.seq, ok: error === null, error });
    }
  }

  get model() {
    return this.panel.content.model;
  }

  // A re-run of a %%k2think cell replaces the tool cells of its previous run, which sit right below it.
  begin(data) {
    const model = this.model;
    const at = cellIndex(model, data.anchor);
    if (at < 0) {
      return;
    }
    this.lastOfRun.set(data.run, data.anchor);
    if (!data.replace) {
      return;
    }
    let end = at + 1;
    while (end < model.cells.length && isK2nbCell(model.cells.get(end), data.anchor)) {
      end++;
    }
    if (end > at + 1) {
      model.sharedModel.transact(() => {
        for (let i = end - 1; i > at; i--) {
          model.sharedModel.deleteCell(i);
        }
      });
    }
  }

  insert(data) {
    const model = this.model;
    const after = this.lastOfRun.get(data.run) ?? data.anchor;
    let at = cellIndex(model, after);
    if (at < 0) {
      at = cellIndex(model, data.anchor);
    }
    if (at < 0) {
      return; // the anchor is in another notebook on this kernel (or was deleted)
    }
    const cell = data.cell;
    model.sharedModel.insertCell(at + 1, {
      id: cell.id,
      cell_type: 'code',
      source: cell.source,
      metadata: cell.metadata ?? {},
      outputs: cell.outputs ?? [],
      execution_count: cell.execution_count ?? null
    });
    const inserted = model.cells.get(at + 1);
    if (inserted.id !== cell.id) {
      console.warn('k2nb: the notebook gave the inserted cell another id', inserted.id, cell.id);
    }
    // Its outputs come from this user's own kernel, exactly like those of a cell they ran.
    inserted.trusted = true;
    this.lastOfRun.set(data.run, inserted.id);
    const early = this.pending.get(cell.id);
    if (early) {
      this.pending.delete(cell.id);
      this.update(early);
    }
    setTimeout(() => tagCells(this.panel), 0);
  }

  update(data) {
    const model = this.model;
    const at = cellIndex(model, data.cell_id);
    if (at < 0) {
      return;
    }
    const cellModel = model.cells.get(at);
    if (data.outputs !== undefined) {
      cellModel.outputs.clear();
      for (const output of data.outputs) {
        cellModel.outputs.add(output);
      }
      cellModel.trusted = true;
    }
    if (data.execution_count !== undefined) {
      cellModel.executionCount = data.execution_count;
    }
    if (data.metadata !== undefined) {
      cellModel.setMetadata('k2nb', data.metadata.k2nb ?? data.metadata);
    }
  }
}

const plugin = {
  id: 'k2nb:cells',
  description: 'Inserts the tool calls of a running %%k2think cell as real code cells below it.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app, tracker) => {
    const channels = new WeakMap();
    const attach = panel => {
      if (!channels.has(panel)) {
        channels.set(panel, new NotebookChannel(panel));
      }
    };
    tracker.forEach(attach);
    tracker.widgetAdded.connect((_, panel) => attach(panel));
    // Lets tests and curious users see that the extension is live.
    window.k2nb = { version: VERSION, client: CLIENT };
  }
};

export default plugin;
