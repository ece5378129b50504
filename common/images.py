"""Image files read by the ports' own loaders: every decode failure names the file."""

import contextlib
import os


class ImageFileError(ValueError):
    """An image file that exists but cannot be decoded (truncated, corrupt, not an image)."""


@contextlib.contextmanager
def naming(path):
    """Runs an image read; any failure to decode `path` is re-raised as ImageFileError naming it.

    The loaders keep their original readers (PIL, imageio, OpenCV), whose numbers they reproduce:

        with images.naming(path):
            image = np.array(Image.open(path))
    """
    try:
        yield
    except FileNotFoundError:
        raise
    except Exception as error:  # PIL, imageio and OpenCV each raise their own types for a bad file
        raise ImageFileError(f"cannot read image {os.path.normpath(path)} ({type(error).__name__}: {error}); "
                             f"replace or remove the file") from error
