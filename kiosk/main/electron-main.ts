// The kiosk's Electron main process: one fullscreen window, no menus, no devtools outside
// development, and the STYLE.md security checklist: context isolation, sandbox, no node integration,
// a strict CSP (kiosk/renderer/index.html), navigation / new windows / webviews denied, permission
// requests denied, nothing but the app's own files loaded. It alone holds the terminal credential
// and talks to the switch (kiosk/main/switch-client.ts); the renderer asks through the preload's
// bridge, and kiosk/main/handlers.ts answers (checking the sender and every argument again).
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { app, BrowserWindow, ipcMain, Menu, session, type IpcMainInvokeEvent } from 'electron';
import { ACTIONS, IPC_EVENT, IPC_PREFIX, type KioskEvent } from '../shared/api.js';
import { KeyboardWedgeReader } from './card-reader.js';
import { createKioskHandlers } from './handlers.js';
import { KioskConfigError, loadKioskConfig, type KioskConfig } from './settings.js';
import { createSwitchClient } from './switch-client.js';

/** The kiosk's screen: a portrait 1080 x 1920 touch panel. */
export const KIOSK_WIDTH = 1080;
export const KIOSK_HEIGHT = 1920;

let config: KioskConfig;
try {
  config = loadKioskConfig(process.env);
} catch (err) {
  process.stderr.write(`${err instanceof KioskConfigError ? err.message : String(err)}\n`);
  process.exit(2);
}

const dev = config.settings.dev;
const rendererIndex = join(__dirname, 'renderer', 'index.html');
const trustedUrl = pathToFileURL(rendererIndex).href;

app.enableSandbox();
if (!app.requestSingleInstanceLock()) app.quit();

// Every web contents, whatever creates it: no navigation, no new windows, no webviews.
app.on('web-contents-created', (_event, contents) => {
  contents.on('will-navigate', (event) => event.preventDefault());
  contents.on('will-redirect', (event) => event.preventDefault());
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
});

let win: BrowserWindow | undefined;

function emit(event: KioskEvent): void {
  if (win !== undefined && !win.isDestroyed()) win.webContents.send(IPC_EVENT, event);
}

const client = createSwitchClient({ address: config.address, credential: config.credential, tls: config.tls });
const handlers = createKioskHandlers({
  switch: client,
  settings: config.settings,
  trustedUrl,
  trustedWebContentsId: () => (win === undefined || win.isDestroyed() ? undefined : win.webContents.id),
  emit,
  demoCardSerial: config.demoCardSerial,
  // Action names and result codes only: no password, no card serial, no card number.
  log: (line) => process.stdout.write(`${JSON.stringify({ t: new Date().toISOString(), ...line })}\n`),
});
const reader = new KeyboardWedgeReader();
reader.start((serial) => void handlers.cardRead(serial));

function senderOf(event: IpcMainInvokeEvent): { webContentsId: number; frameUrl: string; isMainFrame: boolean } {
  const frame = event.senderFrame;
  return {
    webContentsId: event.sender.id,
    frameUrl: frame?.url ?? '',
    isMainFrame: frame !== null && frame === event.sender.mainFrame,
  };
}

for (const action of ACTIONS)
  ipcMain.handle(`${IPC_PREFIX}${action}`, (event, arg: unknown) => handlers.invoke(senderOf(event), action, arg));

void app.whenReady().then(async () => {
  Menu.setApplicationMenu(null);
  const ses = session.defaultSession;
  ses.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  ses.setPermissionCheckHandler(() => false);
  ses.setDevicePermissionHandler(() => false);
  // No remote content: only the app's own files (and devtools in development).
  ses.webRequest.onBeforeRequest((details, callback) => {
    const local = details.url.startsWith('file://') || (dev && details.url.startsWith('devtools://'));
    callback({ cancel: !local });
  });

  win = new BrowserWindow({
    width: KIOSK_WIDTH,
    height: KIOSK_HEIGHT,
    kiosk: !dev,
    fullscreen: !dev,
    autoHideMenuBar: true,
    backgroundColor: '#f4f6f8',
    show: false,
    title: '校园卡自助服务',
    webPreferences: {
      preload: join(__dirname, 'preload.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      navigateOnDragDrop: false,
      spellcheck: false,
      devTools: dev,
    },
  });
  win.once('ready-to-show', () => win?.show());
  win.webContents.on('before-input-event', (event, input) => {
    if (input.type === 'keyDown' && reader.feed(input.key, Date.now())) event.preventDefault();
    // No reload, no zoom, no devtools shortcuts on a kiosk.
    if (!dev && (input.control || input.meta || input.alt || /^F\d+$/.test(input.key))) event.preventDefault();
  });
  win.webContents.on('render-process-gone', () => {
    handlers.forget('ended');
    void win?.loadFile(rendererIndex);
  });
  win.on('closed', () => {
    handlers.forget('ended');
    win = undefined;
  });
  await win.loadFile(rendererIndex);
});

app.on('window-all-closed', () => {
  // The window's 'closed' forgot the holder, which closes a recharge QR still up at its channel: let that
  // call finish (it is bounded by its deadline) before the connection to the switch goes.
  void handlers.closing().finally(() => {
    handlers.dispose();
    client.close();
    app.quit();
  });
});
