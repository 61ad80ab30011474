// Test hooks for tests/browser/bundlers.test.mjs: more loads through the same installed package.
import { Pinhole } from 'pinhole';

window.captionWith = async ({ source, worker }) => {
  const vlm = await Pinhole.load(source, { worker });
  try {
    const image = document.querySelector('#scene');
    return (await vlm.generate(image, { prompt: 'caption en' })).text;
  } finally {
    vlm.dispose();
  }
};
window.harnessReady = true;
